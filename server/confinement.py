"""The path rule of the model repository: files the server opens for a model stay inside the repository.

A `config.toml` (`model_filename`), a symlinked model or version directory, or a symlinked file could
otherwise make the server read any file the process can open. Paths are compared after resolving
every symlink, so a link that stays inside the repository keeps working. Operators who keep model
files elsewhere on purpose allow it with --allow-external-model-files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from server.errors import ModelLoadError

ALLOW_FLAG = "--allow-external-model-files (SERVER_ALLOW_EXTERNAL_MODEL_FILES=true)"
"""How an operator allows model files outside the repository; named in every refusal."""


class OutsideRepositoryError(ModelLoadError):
    """A model's file or directory resolves to a place outside the repository."""


@dataclass(frozen=True, slots=True)
class RepositoryConfinement:
    """Checks that paths resolve inside `root` (itself resolved, so a symlinked repository root is fine)."""

    root: Path
    allow_external: bool = False

    def check(self, path: Path, what: str) -> None:
        """Raise OutsideRepositoryError unless `path` resolves inside the repository. Blocking (reads symlinks)."""
        if self.allow_external:
            return
        try:
            root = self.root.resolve()
            resolved = path.resolve()
        except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop on Python < 3.13
            raise OutsideRepositoryError(f"{what} {path} cannot be resolved: {error}") from None
        if not resolved.is_relative_to(root):
            raise OutsideRepositoryError(
                f"{what} {path} resolves to {resolved}, outside the model repository {root}; "
                f"files outside the repository are refused unless the server runs with {ALLOW_FLAG}"
            )
