"""The one place where "which version serves this request" is decided.

An explicit `model_version` always wins (pinned); an unversioned request goes to the model's
default version: the highest ready one.
"""

from __future__ import annotations

from server.repository.manager import ModelRepository
from server.types import InferRequest
from server.versions.loaded import LoadedVersion


class Router:
    """Picks the loaded version for each request from the repository's current record of its model."""

    def __init__(self, repository: ModelRepository) -> None:
        self._repository = repository

    def select(self, request: InferRequest) -> LoadedVersion:
        """The version that serves `request`; NOT_FOUND / UNAVAILABLE errors name what is missing."""
        return self._repository.resolve(request.model_name, request.model_version)
