"""The test renderer (tests/deploy/kustomize.py): strategic-merge semantics, and agreement with real kustomize."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.kustomize import UnsupportedKustomizationError, merge_patch, render, split_image
from tests.deploy.manifests import KUSTOMIZATIONS

KUSTOMIZE_COMMAND = (
    ["kubectl", "kustomize"] if shutil.which("kubectl") else ["kustomize", "build"] if shutil.which("kustomize") else []
)


def _sorted(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(objects, key=lambda o: (o["kind"], o["metadata"]["name"]))


@pytest.mark.skipif(not KUSTOMIZE_COMMAND, reason="neither kubectl nor kustomize is installed")
@pytest.mark.parametrize("target", sorted(KUSTOMIZATIONS))
def test_the_renderer_agrees_with_kustomize(target: str) -> None:
    output = subprocess.run(
        [*KUSTOMIZE_COMMAND, str(KUSTOMIZATIONS[target])], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    expected = [doc for doc in yaml.safe_load_all(output) if doc]
    assert _sorted(render(KUSTOMIZATIONS[target])) == _sorted(expected)


POD: dict[str, Any] = {
    "spec": {
        "containers": [
            {
                "name": "server",
                "args": ["--a=1", "--b=2"],
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"name": "grpc", "containerPort": 8001}, {"name": "metrics", "containerPort": 8002}],
                "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
            },
            {"name": "sidecar", "image": "s:1"},
        ],
        "tolerations": [{"key": "a", "operator": "Exists"}],
    }
}


def test_lists_with_a_merge_key_merge_item_by_item_patch_items_first() -> None:
    patch = {
        "spec": {"containers": [{"name": "server", "env": [{"name": "C", "value": "3"}, {"name": "B", "value": "9"}]}]}
    }
    merged = merge_patch(POD, patch)
    server, sidecar = merged["spec"]["containers"]
    assert server["env"] == [{"name": "C", "value": "3"}, {"name": "B", "value": "9"}, {"name": "A", "value": "1"}]
    assert server["args"] == ["--a=1", "--b=2"]
    assert sidecar == {"name": "sidecar", "image": "s:1"}
    assert POD["spec"]["containers"][0]["env"][1]["value"] == "2", "the base is not modified"


def test_maps_merge_and_null_deletes() -> None:
    patch = {"spec": {"containers": [{"name": "server", "resources": {"limits": {"memory": "2Gi"}, "requests": None}}]}}
    server = merge_patch(POD, patch)["spec"]["containers"][0]
    assert server["resources"] == {"limits": {"memory": "2Gi"}}


def test_lists_without_a_merge_key_are_replaced() -> None:
    patch = {
        "spec": {
            "containers": [{"name": "server", "args": ["--c=3"]}],
            "tolerations": [{"key": "b", "operator": "Exists"}],
        }
    }
    merged = merge_patch(POD, patch)
    assert merged["spec"]["containers"][0]["args"] == ["--c=3"]
    assert merged["spec"]["tolerations"] == [{"key": "b", "operator": "Exists"}]


def test_container_ports_merge_on_container_port_service_ports_on_port() -> None:
    patch = {"spec": {"containers": [{"name": "server", "ports": [{"containerPort": 8002, "name": "prom"}]}]}}
    ports = merge_patch(POD, patch)["spec"]["containers"][0]["ports"]
    assert ports == [{"name": "prom", "containerPort": 8002}, {"name": "grpc", "containerPort": 8001}]
    service = {"spec": {"ports": [{"name": "grpc", "port": 8001, "targetPort": "grpc"}]}}
    merged = merge_patch(service, {"spec": {"ports": [{"port": 8001, "appProtocol": "grpc"}]}})
    assert merged["spec"]["ports"] == [{"name": "grpc", "port": 8001, "targetPort": "grpc", "appProtocol": "grpc"}]


@pytest.mark.parametrize(
    "patch",
    [
        {"spec": {"containers": [{"name": "server", "$patch": "delete"}]}},
        {"spec": {"$setElementOrder/containers": [{"name": "server"}]}},
        {"spec": {"containers": [{"image": "no-name:1"}]}},
    ],
)
def test_directives_and_items_without_their_merge_key_are_refused(patch: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedKustomizationError):
        merge_patch(POD, patch)


@pytest.mark.parametrize(
    ("image", "parts"),
    [
        ("oip-inference-server:0.1.0", ("oip-inference-server", "0.1.0", None)),
        ("registry:5000/team/server", ("registry:5000/team/server", None, None)),
        ("registry:5000/server:1@sha256:ab", ("registry:5000/server", "1", "sha256:ab")),
    ],
)
def test_split_image(image: str, parts: tuple[str, str | None, str | None]) -> None:
    assert split_image(image) == parts


def _write(path: Path, documents: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(documents), encoding="utf-8")


DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "app"},
    "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "app:1.0", "args": ["a"]}]}}},
}


def test_an_overlay_applies_components_then_its_patches_images_and_replicas(tmp_path: Path) -> None:
    _write(tmp_path / "base" / "kustomization.yaml", [{"resources": ["deployment.yaml"]}])
    _write(tmp_path / "base" / "deployment.yaml", [DEPLOYMENT])
    component_patch = {**DEPLOYMENT, "spec": {"template": {"spec": {"containers": [{"name": "c", "args": ["b"]}]}}}}
    _write(tmp_path / "component" / "kustomization.yaml", [{"kind": "Component", "patches": [{"path": "p.yaml"}]}])
    _write(tmp_path / "component" / "p.yaml", [component_patch])
    overlay_patch = {**DEPLOYMENT, "spec": {"template": {"spec": {"containers": [{"name": "c", "args": ["c"]}]}}}}
    _write(
        tmp_path / "overlay" / "kustomization.yaml",
        [
            {
                "resources": ["../base"],
                "components": ["../component"],
                "patches": [{"path": "p.yaml"}],
                "images": [{"name": "app", "newTag": "2.0"}],
                "replicas": [{"name": "app", "count": 5}],
            }
        ],
    )
    _write(tmp_path / "overlay" / "p.yaml", [overlay_patch])

    (deployment,) = render(tmp_path / "overlay")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container == {"name": "c", "image": "app:2.0", "args": ["c"]}
    assert deployment["spec"]["replicas"] == 5
    (base_only,) = render(tmp_path / "base")
    assert base_only["spec"]["template"]["spec"]["containers"][0]["args"] == ["a"]


@pytest.mark.parametrize(
    "kustomization",
    [
        {"resources": ["deployment.yaml"], "namePrefix": "x-"},
        {"resources": ["deployment.yaml"], "patches": [{"path": "p.yaml", "target": {"kind": "Deployment"}}]},
        {"resources": ["deployment.yaml"], "patches": [{"path": "p.yaml"}]},
        {"resources": ["deployment.yaml"], "replicas": [{"name": "other", "count": 1}]},
    ],
)
def test_what_it_does_not_implement_is_refused(tmp_path: Path, kustomization: dict[str, Any]) -> None:
    _write(tmp_path / "kustomization.yaml", [kustomization])
    _write(tmp_path / "deployment.yaml", [DEPLOYMENT])
    _write(tmp_path / "p.yaml", [{**DEPLOYMENT, "metadata": {"name": "not-there"}}])
    with pytest.raises(UnsupportedKustomizationError):
        render(tmp_path)
