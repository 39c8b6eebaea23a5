"""Reads the repository directory: which models exist and which version directories they have."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ModelSource:
    """One model directory as found on disk."""

    name: str
    path: Path
    versions: dict[int, Path]


def _is_model_dir(path: Path) -> bool:
    # Hidden and private directories (".git", "__pycache__", "_builder") are not models.
    if path.name.startswith((".", "_")):
        return False
    try:
        return path.is_dir()
    except OSError:  # e.g. ENAMETOOLONG: a name no file system can hold names no model
        return False


def _is_one_component(name: str) -> bool:
    # Path separators would escape the repository.
    return bool(name) and Path(name).name == name


def list_models(root: Path) -> list[str]:
    """Names of the model directories under `root`, sorted."""
    if not root.is_dir():
        return []
    return sorted(child.name for child in root.iterdir() if _is_model_dir(child))


def has_model(root: Path, name: str) -> bool:
    """Whether `root/name` is a model directory (cheap: one stat, no listing)."""
    return _is_one_component(name) and _is_model_dir(root / name)


def scan_model(root: Path, name: str) -> ModelSource | None:
    """The model directory `root/name` with its numbered versions, or None if absent."""
    if not has_model(root, name):
        return None
    path = root / name
    versions = {
        int(child.name): child
        for child in path.iterdir()
        if child.is_dir() and child.name.isascii() and child.name.isdecimal()
    }
    return ModelSource(name=name, path=path, versions=versions)
