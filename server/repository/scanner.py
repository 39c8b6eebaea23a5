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
    return RepositoryLayout(root).scan(name)


def is_single_model_dir(path: Path) -> bool:
    """Whether `path` is one model's directory (numbered version subdirectories) rather than a repository of models.

    KServe's storage initializer lays a model out this way at /mnt/models; a repository holds named model
    directories, and a model named only by digits is not one we can tell apart from a version, so none is.
    """
    try:
        return path.is_dir() and any(
            child.is_dir() and child.name.isascii() and child.name.isdecimal() for child in path.iterdir()
        )
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class RepositoryLayout:
    """Where each model's directory is: `root/<name>` in a repository, or `root` itself for a single model."""

    root: Path
    single_model: str | None = None
    """With a name, `root` is that one model's directory, served under this name."""

    def model_dir(self, name: str) -> Path | None:
        """The directory model `name` would have, or None when no model of that name can be here."""
        if self.single_model is not None:
            return self.root if name == self.single_model else None
        return self.root / name if _is_one_component(name) else None

    def names(self) -> list[str]:
        """The models on disk, sorted."""
        if self.single_model is not None:
            return [self.single_model] if self.root.is_dir() else []
        return list_models(self.root)

    def has(self, name: str) -> bool:
        """Whether model `name` has a directory (cheap: one stat, no listing)."""
        if self.single_model is not None:
            return name == self.single_model and self.root.is_dir()
        return has_model(self.root, name)

    def scan(self, name: str) -> ModelSource | None:
        """Model `name` with its numbered versions, or None if it has no directory."""
        path = self.model_dir(name)
        if path is None or not self.has(name):
            return None
        versions = {
            int(child.name): child
            for child in path.iterdir()
            if child.is_dir() and child.name.isascii() and child.name.isdecimal()
        }
        return ModelSource(name=name, path=path, versions=versions)


def layout_for(root: Path, model_name: str | None = None) -> RepositoryLayout:
    """The layout of `root`: a single model's directory (served as `model_name`, default the directory's name)
    or a repository of model directories."""
    if is_single_model_dir(root):
        return RepositoryLayout(root, model_name or root.resolve().name)
    return RepositoryLayout(root)
