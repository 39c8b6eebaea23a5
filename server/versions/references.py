"""Reading reference profiles: beside a version being loaded, or from the repository for the supervisor.

The --workers supervisor loads no models, so it reads each version's drift settings and profile from the
repository directory, as the workers did, and rereads a file only when it changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from server.confinement import OutsideRepositoryError, RepositoryConfinement
from server.errors import ModelLoadError
from server.model_config import CONFIG_FILE, load_model_config
from server.predictions.config import DriftConfig
from server.predictions.monitor import VersionReference
from server.predictions.profile import PROFILE_FILE, ProfileError, ReferenceProfile, load_profile

log = logging.getLogger(__name__)


def read_reference(version_dir: Path, label: str, confinement: RepositoryConfinement) -> ReferenceProfile | None:
    """The reference profile in a version's directory, if any. A bad profile does not stop the version from
    serving: it serves without drift scores, and the reason is logged. A profile that resolves outside
    the repository is as bad (the path rule of model files, server.confinement). Blocking (file IO)."""
    path = version_dir / PROFILE_FILE
    if not path.is_file():
        return None
    try:
        confinement.check(path, "reference profile")
        return load_profile(path)
    except (ProfileError, OutsideRepositoryError) as error:
        log.warning(
            "reference profile not used; serving without drift scores", extra={"model": label, "error": str(error)}
        )
        return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return -1.0


class RepositoryReferences:
    """From the repository directory (the --workers supervisor, which loads no models)."""

    def __init__(
        self, repository: Path, model_dir: Callable[[str], Path | None], allow_external_files: bool = False
    ) -> None:
        """`model_dir`: where a model's directory is (`RepositoryLayout.model_dir`; None: no such model).
        `allow_external_files`: read profiles that resolve outside `repository` (see server.confinement)."""
        self._model_dir = model_dir
        self._confinement = RepositoryConfinement(repository, allow_external_files)
        self._cache: dict[tuple[str, int], tuple[tuple[float, float], VersionReference]] = {}

    def __call__(self, model: str, version: int) -> VersionReference | None:
        model_dir = self._model_dir(model)
        if model_dir is None:
            return None
        profile_path = model_dir / str(version) / PROFILE_FILE
        stamp = (_mtime(model_dir / CONFIG_FILE), _mtime(profile_path))
        cached = self._cache.get((model, version))
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            drift = load_model_config(model_dir).telemetry.drift
        except ModelLoadError:
            drift = DriftConfig()  # the workers do not serve an invalid config; nothing will be scored
        label = f"{model}:{version}"
        profile = read_reference(profile_path.parent, label, self._confinement) if stamp[1] >= 0 else None
        reference = VersionReference(drift, profile)
        self._cache[(model, version)] = (stamp, reference)
        return reference
