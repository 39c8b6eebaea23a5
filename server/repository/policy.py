"""Version policy: which of the versions on disk are served. Pure functions."""

from __future__ import annotations

from collections.abc import Iterable

from server.model_config import VersionPolicy


def select_versions(policy: VersionPolicy, available: Iterable[int]) -> list[int]:
    """The versions to serve, ascending. Specific versions missing on disk are skipped."""
    ordered = sorted(set(available))
    if policy.policy == "latest":
        return ordered[-policy.latest :]
    if policy.policy == "specific":
        wanted = set(policy.versions)
        return [version for version in ordered if version in wanted]
    return ordered
