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
    return path.is_dir() and not path.name.startswith((".", "_"))


def list_models(root: Path) -> list[str]:
    """Names of the model directories under `root`, sorted."""
    if not root.is_dir():
        return []
    return sorted(child.name for child in root.iterdir() if _is_model_dir(child))


def scan_model(root: Path, name: str) -> ModelSource | None:
    """The model directory `root/name` with its numbered versions, or None if absent."""
    if not name or Path(name).name != name:
        return None  # path separators would escape the repository
    path = root / name
    if not _is_model_dir(path):
        return None
    versions = {
        int(child.name): child
        for child in path.iterdir()
        if child.is_dir() and child.name.isascii() and child.name.isdecimal()
    }
    return ModelSource(name=name, path=path, versions=versions)
