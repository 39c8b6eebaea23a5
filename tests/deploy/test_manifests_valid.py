"""Every manifest under deploy/ is valid for its kind, offline: Kubernetes' own schemas for built-in kinds (strict,
unknown fields fail), our subset schemas for ServiceMonitor, ServingRuntime and InferenceService."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.kustomize import Manifest
from tests.deploy.manifests import (
    CUSTOM_SCHEMAS,
    KUSTOMIZATIONS,
    find,
    kserve_objects,
    rendered,
    standalone_objects,
    validate,
)

BUILT_IN = {
    "ServiceAccount",
    "PersistentVolumeClaim",
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
}
CASES = [
    pytest.param(obj, id=f"{target}-{obj['kind']}-{obj['metadata']['name']}")
    for target in sorted(KUSTOMIZATIONS)
    for obj in rendered(target)
] + [
    pytest.param(obj, id=f"{obj['kind']}-{obj['metadata']['name']}")
    for obj in [*kserve_objects(), *standalone_objects()]
]


@pytest.mark.parametrize("obj", CASES)
def test_manifest_is_valid(obj: Manifest) -> None:
    validate(obj)


@pytest.mark.parametrize("target", sorted(KUSTOMIZATIONS))
def test_each_kustomization_renders_the_whole_deployment(target: str) -> None:
    kinds = {obj["kind"] for obj in rendered(target)}
    assert kinds == {*BUILT_IN, "ServiceMonitor"}
    for obj in rendered(target):
        assert obj["kind"] in BUILT_IN or (obj["apiVersion"], obj["kind"]) in CUSTOM_SCHEMAS


@pytest.mark.parametrize("overlay", ["dev", "prod", "gpu"])
def test_an_overlay_patches_the_base_and_adds_nothing(overlay: str) -> None:
    directory = KUSTOMIZATIONS[overlay]
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kustomization["resources"] == ["../../base"]
    base_names = {(o["kind"], o["metadata"]["name"]) for o in rendered("base")}
    patches = [p for p in directory.glob("*.yaml") if p.name != "kustomization.yaml"]
    assert sorted(p.name for p in patches) == sorted(spec["path"] for spec in kustomization["patches"])
    for path in patches:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            assert (doc["kind"], doc["metadata"]["name"]) in base_names, f"{path.name} patches nothing in the base"


def _broken(obj: Manifest, path: list[Any], value: Any) -> Manifest:
    broken = copy.deepcopy(obj)
    node: Any = broken
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return broken


POD_SPEC = ["spec", "template", "spec"]
BROKEN = [
    # An unknown field (a typo) fails the strict Kubernetes schema.
    pytest.param("Deployment", [*POD_SPEC, "containers", 0, "livenesProbe"], {}, id="deployment-typo"),
    pytest.param("Deployment", [*POD_SPEC, "containers", 0, "startupProbe", "grpc", "port"], "grpc", id="grpc-port"),
    pytest.param("Service/oip-inference-server", ["spec", "ports", 0, "port"], "8001", id="service-port-string"),
    pytest.param("ServiceMonitor", ["spec", "endpoints", 0, "interval"], "15 seconds", id="servicemonitor-interval"),
    pytest.param("ServiceMonitor", ["spec", "endpoints", 0, "relabelling"], [], id="servicemonitor-typo"),
    # The containers of a ServingRuntime are checked against the Kubernetes Container schema.
    pytest.param("ServingRuntime", ["spec", "containers", 0, "argz"], [], id="runtime-container-typo"),
    pytest.param("ServingRuntime", ["spec", "protocolVersions", 0], "grpc-v3", id="runtime-protocol"),
    pytest.param("InferenceService", ["spec", "predictor", "model", "protocolVersion"], "grpc", id="isvc-protocol"),
    pytest.param("InferenceService", ["spec", "predictor", "model", "storageUri"], "/models/x", id="isvc-uri"),
]


@pytest.mark.parametrize(("kind", "path", "value"), BROKEN)
def test_a_broken_manifest_fails_validation(kind: str, path: list[Any], value: Any) -> None:
    objects = [*rendered("base"), *kserve_objects()]
    kind, _, name = kind.partition("/")
    obj = find(objects, kind, name or None)
    validate(obj)
    with pytest.raises(jsonschema.ValidationError):
        validate(_broken(obj, path, value))


def test_a_kind_without_a_schema_is_not_silently_accepted() -> None:
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})


def test_the_prometheus_adapter_rule_is_well_formed() -> None:
    (configmap,) = standalone_objects()
    assert configmap["kind"] == "ConfigMap"
    config = yaml.safe_load(configmap["data"]["config.yaml"])
    (rule,) = config["rules"]
    assert set(rule) == {"seriesQuery", "resources", "name", "metricsQuery"}
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    for placeholder in ("<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"):
        assert placeholder in rule["metricsQuery"]
