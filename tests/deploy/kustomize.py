"""A minimal Kustomize renderer for deploy/kubernetes, so that CI can check the overlays without a kustomize binary.

It implements only what those kustomizations use, the way kustomize does it: `resources` (files and directories),
`components`, `patches` given by `path` (strategic-merge patches whose target is the patch's own kind and name),
`images` and `replicas`. Anything else raises UnsupportedKustomizationError instead of being ignored, and so does a
strategic-merge directive (`$patch`, `$setElementOrder/...`, `$deleteFromPrimitiveList/...`).
tests/deploy/test_kustomize.py compares its output with `kubectl kustomize` where kubectl is installed.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_KEYS = {"apiVersion", "kind", "resources", "components", "patches", "images", "replicas"}
_SCALABLE = {"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"}

#: Kubernetes' patchMergeKey of the lists our patches touch; a list under any other field is replaced whole, as
#: Kubernetes does for lists without one (tolerations, args, HPA metrics, ...). `ports` is special-cased below.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "topologySpreadConstraints": "topologyKey",
}


class UnsupportedKustomizationError(ValueError):
    """The kustomization or patch uses something this renderer does not implement."""


def load_documents(path: Path) -> list[Manifest]:
    """The non-empty YAML documents of a file."""
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def _merge_key(path: tuple[str, ...]) -> str | None:
    field = path[-1] if path else ""
    if field == "ports":
        # Container ports merge on containerPort, a Service's on port.
        return "containerPort" if len(path) >= 2 and path[-2] in {"containers", "initContainers"} else "port"
    return MERGE_KEYS.get(field)


def _check_directives(patch: Any) -> None:
    if isinstance(patch, dict):
        for key, value in patch.items():
            if isinstance(key, str) and key.startswith("$"):
                raise UnsupportedKustomizationError(f"strategic-merge directive {key!r} is not supported")
            _check_directives(value)
    elif isinstance(patch, list):
        for item in patch:
            _check_directives(item)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def merge_patch(base: Any, patch: Any, path: tuple[str, ...] = ()) -> Any:
    """Apply a strategic-merge patch to `base` and return the result (`base` is not modified).

    Maps merge key by key and `null` deletes a key. A list with a merge key merges item by item: the patch's items
    first, in its order (merged into the base's item with the same key), then the base's items it does not name,
    which is the order kustomize writes. Every other list, and every scalar, replaces the base's.
    """
    _check_directives(patch)
    return _merge(base, patch, path)


def _merge(base: Any, patch: Any, path: tuple[str, ...]) -> Any:
    if isinstance(patch, dict) and isinstance(base, dict):
        result = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                result.pop(key, None)
            elif key in result:
                result[key] = _merge(result[key], value, (*path, key))
            else:
                result[key] = _without_nulls(value)
        return result
    key = _merge_key(path)
    if isinstance(patch, list) and isinstance(base, list) and key is not None:
        return _merge_list(base, patch, key, path)
    return _without_nulls(copy.deepcopy(patch))


def _merge_list(base: list[Any], patch: list[Any], key: str, path: tuple[str, ...]) -> list[Any]:
    for item in (*base, *patch):
        if not isinstance(item, dict) or key not in item:
            raise UnsupportedKustomizationError(f"every item of {'.'.join(path)} needs its merge key {key!r}")
    by_key = {item[key]: item for item in base}
    patched = [_merge(by_key[item[key]], item, path) if item[key] in by_key else _without_nulls(item) for item in patch]
    named = {item[key] for item in patch}
    return [*patched, *(copy.deepcopy(item) for item in base if item[key] not in named)]


def _read_kustomization(directory: Path, kind: str) -> dict[str, Any]:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            documents = load_documents(directory / name)
            break
    else:
        raise UnsupportedKustomizationError(f"{directory} has no kustomization file")
    if len(documents) != 1:
        raise UnsupportedKustomizationError(f"{directory}: a kustomization file holds one document")
    kustomization = documents[0]
    if kustomization.get("kind", "Kustomization") != kind:
        raise UnsupportedKustomizationError(f"{directory} is a {kustomization.get('kind')}, expected a {kind}")
    unknown = set(kustomization) - _KEYS
    if unknown:
        raise UnsupportedKustomizationError(f"{directory}: unsupported fields {sorted(unknown)}")
    return kustomization


def render(directory: Path) -> list[Manifest]:
    """The objects `kubectl kustomize directory` would print, in the order of their resources."""
    return _build(directory, "Kustomization", [])


def _build(directory: Path, kind: str, accumulated: list[Manifest]) -> list[Manifest]:
    kustomization = _read_kustomization(directory, kind)
    objects = list(accumulated)
    for entry in kustomization.get("resources", []):
        target = directory / entry
        objects.extend(render(target) if target.is_dir() else load_documents(target))
    for entry in kustomization.get("components", []):
        objects = _build(directory / entry, "Component", objects)
    for spec in kustomization.get("patches", []):
        if set(spec) != {"path"}:
            raise UnsupportedKustomizationError(f"{directory}: only patches given by `path` are supported: {spec}")
        for patch in load_documents(directory / spec["path"]):
            objects = _apply_patch(objects, patch, directory / spec["path"])
    for image in kustomization.get("images", []):
        _set_image(objects, image)
    for replicas in kustomization.get("replicas", []):
        _set_replicas(objects, replicas)
    return objects


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def _apply_patch(objects: list[Manifest], patch: Manifest, source: Path) -> list[Manifest]:
    matches = [
        index
        for index, obj in enumerate(objects)
        if obj["kind"] == patch["kind"]
        and obj["metadata"]["name"] == patch["metadata"]["name"]
        and _group(obj["apiVersion"]) == _group(patch["apiVersion"])
    ]
    if len(matches) != 1:
        raise UnsupportedKustomizationError(
            f"{source}: {len(matches)} objects match {patch['kind']}/{patch['metadata']}"
        )
    result = list(objects)
    result[matches[0]] = merge_patch(objects[matches[0]], patch)
    return result


def _containers(value: Any) -> Iterator[dict[str, Any]]:
    """Every container (and init container) anywhere in an object."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in {"containers", "initContainers"} and isinstance(item, list):
                yield from (c for c in item if isinstance(c, dict))
            else:
                yield from _containers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _containers(item)


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """(name, tag, digest) of an image reference; a registry's port is part of the name."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :], digest or None
    return name, None, digest or None


def _set_image(objects: list[Manifest], spec: dict[str, Any]) -> None:
    unknown = set(spec) - {"name", "newName", "newTag", "digest"}
    if unknown:
        raise UnsupportedKustomizationError(f"unsupported image fields {sorted(unknown)}")
    for obj in objects:
        for container in _containers(obj):
            name, tag, digest = split_image(container.get("image", ""))
            if name != spec["name"]:
                continue
            name = spec.get("newName", name)
            if "digest" in spec:
                container["image"] = f"{name}@{spec['digest']}"
                continue
            tag = spec.get("newTag", tag)
            container["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def _set_replicas(objects: list[Manifest], spec: dict[str, Any]) -> None:
    targets = [obj for obj in objects if obj["kind"] in _SCALABLE and obj["metadata"]["name"] == spec["name"]]
    if not targets:
        raise UnsupportedKustomizationError(f"replicas: no workload named {spec['name']!r}")
    for obj in targets:
        obj.setdefault("spec", {})["replicas"] = int(spec["count"])
