"""The deployment manifests under deploy/, rendered, and their validation against offline schemas.

Built-in kinds are checked with kubernetes-validate (the Kubernetes OpenAPI schemas, strict: unknown fields fail).
Custom resources are checked with the JSON schemas in tests/deploy/schemas/, which cover the fields we use (taken
from the Prometheus Operator and KServe API references) and reuse the Kubernetes definitions for embedded
containers, volumes and metadata.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource

from tests.deploy.kustomize import Manifest, load_documents, render

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
KSERVE = DEPLOY / "kserve"
SCHEMAS = Path(__file__).resolve().parent / "schemas"

#: The oldest Kubernetes the manifests target: native gRPC probes are GA since 1.27.
KUBERNETES_VERSION = "1.30.0"

#: What `kubectl apply -k` is pointed at (deploy/README.md).
KUSTOMIZATIONS = {
    "base": KUBERNETES / "base",
    "dev": KUBERNETES / "overlays" / "dev",
    "prod": KUBERNETES / "overlays" / "prod",
    "gpu": KUBERNETES / "overlays" / "gpu",
}

#: (apiVersion, kind) -> schema file, for the custom resources.
CUSTOM_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.schema.json",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "servingruntime.schema.json",
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice.schema.json",
}


@cache
def rendered(target: str) -> tuple[Manifest, ...]:
    """The objects of one kustomization (see KUSTOMIZATIONS)."""
    return tuple(render(KUSTOMIZATIONS[target]))


def kserve_objects() -> list[Manifest]:
    return [obj for path in sorted(KSERVE.glob("*.yaml")) for obj in load_documents(path)]


def standalone_objects() -> list[Manifest]:
    """Manifests applied on their own, outside any kustomization (the prometheus-adapter rule)."""
    return [obj for path in sorted((KUBERNETES / "prometheus-adapter").glob("*.yaml")) for obj in load_documents(path)]


def find(objects: tuple[Manifest, ...] | list[Manifest], kind: str, name: str | None = None) -> Manifest:
    """The one object of `kind` (and `name`)."""
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _definitions_dir() -> Path:
    version = ".".join(KUBERNETES_VERSION.split(".")[:2])
    root = resources.files("kubernetes_validate") / "kubernetes-json-schema"
    return Path(str(root / f"v{version}.0-local-strict"))


@cache
def _registry() -> Registry:
    """The Kubernetes definitions (id https://kubernetes.io/api/_definitions.json), which our schemas $ref."""
    definitions = json.loads((_definitions_dir() / "_definitions.json").read_text(encoding="utf-8"))
    return Resource.from_contents(definitions) @ Registry()


@cache
def custom_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def validate(obj: Manifest) -> None:
    """Raise a jsonschema.ValidationError (or kubernetes-validate's) unless `obj` is valid for its kind."""
    schema_name = CUSTOM_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
    if schema_name is None:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        return
    validator = jsonschema.Draft202012Validator(custom_schema(schema_name), registry=_registry())
    validator.validate(obj)
