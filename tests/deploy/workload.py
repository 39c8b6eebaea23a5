"""The server as each deployment runs it: its pod, its container, and the settings the server would load from them."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import pytest

from server.cli import build_parser, settings_from_args
from server.settings import SECTIONS, ServerSettings
from tests.deploy.kustomize import Manifest
from tests.deploy.manifests import find, kserve_objects, rendered

SERVER_COMMAND = ["python", "-m", "server"]
#: Every deployment of the server: the kustomizations, and KServe's runtime with its example InferenceService.
WORKLOADS = ("base", "dev", "prod", "gpu", "kserve")

_BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DECIMAL_SUFFIXES = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


@dataclass(frozen=True)
class Workload:
    name: str
    objects: tuple[Manifest, ...]
    pod: dict[str, Any]
    """The pod spec (for KServe: the runtime's containers and volumes, the predictor's pod fields)."""
    pod_labels: dict[str, str]

    @property
    def container(self) -> dict[str, Any]:
        containers = self.pod["containers"]
        assert len(containers) == 1, "the server runs alone in its pod"
        container: dict[str, Any] = containers[0]
        return container

    def port(self, name: str | int) -> int:
        """The container port called `name` (a number is itself)."""
        if isinstance(name, int):
            return name
        ports = {p["name"]: int(p["containerPort"]) for p in self.container["ports"]}
        return ports[name]

    def mount_for(self, path: str) -> dict[str, Any] | None:
        """The volume mount that holds `path` (the deepest one), or None."""
        mounts = [m for m in self.container.get("volumeMounts", []) if f"{path}/".startswith(f"{m['mountPath']}/")]
        return max(mounts, key=lambda m: len(m["mountPath"]), default=None)

    def volume(self, name: str) -> dict[str, Any]:
        volumes: dict[str, dict[str, Any]] = {v["name"]: v for v in self.pod.get("volumes", [])}
        return volumes[name]


def workload(name: str) -> Workload:
    if name == "kserve":
        objects = tuple(kserve_objects())
        runtime = find(objects, "ServingRuntime")["spec"]
        service = find(objects, "InferenceService")
        predictor = service["spec"]["predictor"]
        pod = {
            "containers": [_templated(c, service["metadata"]["name"]) for c in runtime["containers"]],
            "volumes": runtime.get("volumes", []),
            "terminationGracePeriodSeconds": predictor["terminationGracePeriodSeconds"],
        }
        return Workload(name, objects, pod, runtime.get("labels", {}))
    objects = rendered(name)
    template = find(objects, "Deployment", "oip-inference-server")["spec"]["template"]
    return Workload(name, objects, template["spec"], template["metadata"]["labels"])


def _templated(container: dict[str, Any], name: str) -> dict[str, Any]:
    """The container as KServe runs it for the InferenceService `name`: {{.Name}} in its args replaced."""
    return {**container, "args": [arg.replace("{{.Name}}", name) for arg in container.get("args", [])]}


def flag_environment() -> dict[str, str]:
    """Flag -> the environment variable `python -m server --help` names for it."""
    names: dict[str, str] = {}
    for action in build_parser()._actions:
        match = re.search(r"\[(?:env )?([A-Z][A-Z0-9_]+)", action.help or "")
        for flag in action.option_strings:
            if match:
                names[flag] = match.group(1)
    return names


def settings_environment() -> set[str]:
    """Every environment variable a settings field reads (pydantic-settings: env_prefix + field name)."""
    names = set()
    for section in SECTIONS.values():
        prefix = section.model_config.get("env_prefix", "")
        names |= {f"{prefix}{field}".upper() for field in section.model_fields}
    prefix = ServerSettings.model_config.get("env_prefix", "")
    names |= {f"{prefix}{field}".upper() for field in ServerSettings.model_fields if field not in SECTIONS}
    return names


def server_args(container: dict[str, Any]) -> list[str]:
    assert container["command"] == SERVER_COMMAND, container["command"]
    args: list[str] = container["args"]
    return args


def flag_names(args: list[str]) -> list[str]:
    return [arg.split("=", 1)[0] for arg in args if arg.startswith("--")]


def load_settings_of(container: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> ServerSettings:
    """What the server loads from the container's args and env, in an environment without our own SERVER_*/OTEL_*."""
    for name in list(os.environ):
        if name.startswith(("SERVER_", "OTEL_")):
            monkeypatch.delenv(name)
    for variable in container.get("env", []):
        monkeypatch.setenv(variable["name"], variable["value"])
    return settings_from_args(server_args(container))


def quantity(value: str | int) -> float:
    """A Kubernetes resource quantity ("2Gi", "512Mi", "250m", "4") as a number (bytes, or cores)."""
    text = str(value)
    for suffixes in (_BINARY_SUFFIXES, _DECIMAL_SUFFIXES):
        for suffix, factor in suffixes.items():
            if text.endswith(suffix):
                return float(text[: -len(suffix)]) * factor
    if text.endswith("m"):
        return float(text[:-1]) / 1000
    return float(text)


def match_labels(selector: dict[str, Any]) -> dict[str, str]:
    """The labels a LabelSelector requires; the manifests use matchLabels only."""
    assert set(selector) == {"matchLabels"}, f"only matchLabels selectors are used: {selector}"
    labels: dict[str, str] = selector["matchLabels"]
    return labels


def selects(match: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether a non-empty set of required labels selects `labels`."""
    return bool(match) and all(labels.get(key) == value for key, value in match.items())
