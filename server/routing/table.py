"""The immutable routing table of one model, and the pure decision over it.

Weights map onto BUCKETS buckets. Versions are laid out in ascending order with the highest
version at the top end, each owning a contiguous range whose size is its share. A bucket comes
from the sticky key (a stable hash) or from a random draw, and the range it falls in is the
version. Anchoring at the top makes ramps monotone: raising a version's weight while taking it
from lower (older) versions only grows that version's range downwards, so a key already on it
stays on it at every later step (5 -> 25 -> 50 -> 100). The layout never depends on which version
currently has the most weight, so a canary overtaking the stable version reshuffles nobody. With
three or more weighted versions, keys may move between the lower versions as their ranges shift.
"""

from __future__ import annotations

import zlib
from bisect import bisect_right
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from server.errors import ModelLoadError
from server.routing.config import RoutingConfig

BUCKETS = 10_000
"""Resolution of a share: 0.01 %."""


class Route(IntEnum):
    """How a request found its version; `label` is the `route` label of inference_routed_requests_total.

    An IntEnum so that per-request counting is a list index (an Enum's hash is a Python call).
    """

    PINNED = 0
    WEIGHTED = 1
    STICKY = 2
    SHADOW = 3
    FALLBACK = 4

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Layout:
    """Versions with positive weight over the buckets: version i owns [starts[i], starts[i+1])."""

    versions: tuple[int, ...]
    starts: tuple[int, ...]

    def pick(self, bucket: int) -> int:
        return self.versions[bisect_right(self.starts, bucket) - 1]


def layout(weights: Mapping[int, int]) -> Layout | None:
    """The bucket layout of `weights` (None when no version has weight)."""
    routed = sorted(version for version, weight in weights.items() if weight > 0)
    total = sum(weights[version] for version in routed)
    if not total:
        return None
    starts = []
    above = 0  # weight of the versions above the current one, so the top stays anchored
    for version in reversed(routed):
        above += weights[version]
        starts.append(BUCKETS - round(BUCKETS * above / total))
    return Layout(tuple(routed), tuple(reversed(starts)))


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """Everything the routing decision needs for one model; swapped whole, never changed."""

    weights: Mapping[int, int]
    """The effective weight of every routable version (0 = reachable only when pinned)."""
    ready: frozenset[int]
    """Versions that can take traffic now."""
    salt: bytes
    sticky_key: str
    shadow_version: int | None = None
    shadow_fraction: float = 0.0
    primary: Layout | None = None
    """The layout of the configured weights."""
    fallback: Layout | None = None
    """The layout over ready versions only, used when a draw lands on a version that is not ready."""
    sticky_from: str = "any"
    """"any", "parameter" or "metadata": where the sticky key is looked for."""
    salt_crc: int = field(init=False)
    """crc32 of `salt`, computed once: the first half of every sticky hash."""
    parameter_key: str = field(init=False)
    """The request parameter to read ("" = none)."""
    metadata_key: str = field(init=False)
    """The gRPC metadata key to read, lower case as gRPC spells it ("" = none)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "salt_crc", zlib.crc32(self.salt))
        by_parameter = self.sticky_from in ("any", "parameter")
        by_metadata = self.sticky_from in ("any", "metadata")
        object.__setattr__(self, "parameter_key", self.sticky_key if by_parameter else "")
        object.__setattr__(self, "metadata_key", self.sticky_key.lower() if by_metadata else "")

    @property
    def stable(self) -> int | None:
        """The version with the most weight (the lowest such on a tie): the baseline canaries are judged against."""
        positive = [(weight, -version) for version, weight in self.weights.items() if weight > 0]
        return -max(positive)[1] if positive else None

    def canaries(self) -> list[int]:
        """Weighted versions other than the stable one."""
        stable = self.stable
        return sorted(v for v, w in self.weights.items() if w > 0 and v != stable)


def build_table(
    weights: Mapping[int, int],
    ready: Collection[int],
    *,
    salt: str,
    sticky_key: str = "",
    sticky_from: str = "any",
    shadow_version: int | None = None,
    shadow_fraction: float = 0.0,
) -> RoutingTable:
    """A table over `weights`; versions that are not `ready` keep their weight but pass it on (fallback)."""
    ready_set = frozenset(ready)
    primary = layout(weights)
    ready_weights = {v: w for v, w in weights.items() if v in ready_set}
    fallback = primary if set(weights) <= ready_set else layout(ready_weights)
    if fallback is None and ready_set:  # no ready version has weight: the highest ready one takes all
        fallback = layout({max(ready_set): 1})
    return RoutingTable(
        weights=dict(weights),
        ready=ready_set,
        salt=salt.encode(),
        sticky_key=sticky_key,
        sticky_from=sticky_from,
        shadow_version=shadow_version if shadow_version in ready_set else None,
        shadow_fraction=shadow_fraction,
        primary=primary,
        fallback=fallback,
    )


def table_from_config(config: RoutingConfig, model: str, ready: Collection[int]) -> RoutingTable:
    """Validate `config` against the versions that loaded; ModelLoadError names what is wrong."""
    ready_set = set(ready)
    missing = sorted(v for v, w in config.weights.items() if w > 0 and v not in ready_set)
    if missing:
        listed = ", ".join(map(str, missing))
        available = ", ".join(map(str, sorted(ready_set))) or "none"
        raise ModelLoadError(
            f"[routing] weights name version(s) {listed} of model '{model}' that did not load; ready: {available}"
        )
    shadow = config.shadow  # a shadow version that did not load is simply not shadowed (build_table drops it)
    return build_table(
        config.weights,
        ready_set,
        salt=config.salt or model,
        sticky_key=config.sticky_key,
        sticky_from=config.sticky_from,
        shadow_version=None if shadow is None else shadow.version,
        shadow_fraction=0.0 if shadow is None else shadow.fraction,
    )


def default_table(config: RoutingConfig, model: str, ready: Collection[int]) -> RoutingTable:
    """The table a model's config asks for; without weights, the highest ready version takes every request."""
    if config.weights:
        return table_from_config(config, model, ready)
    return build_table({max(ready): 1} if ready else {}, ready, salt=model)


def choose(table: RoutingTable, bucket: int, sticky: bool) -> tuple[int, Route] | None:
    """The version owning `bucket` and how it was chosen; None when no version is ready.

    A draw that lands on a version that is not ready goes to the ready versions by their weights
    (the same bucket over their layout), and is reported as a fallback.
    """
    if table.primary is not None:
        version = table.primary.pick(bucket)
        if version in table.ready:
            return version, Route.STICKY if sticky else Route.WEIGHTED
    if table.fallback is None:
        return None
    return table.fallback.pick(bucket), Route.FALLBACK


def shadow_of(table: RoutingTable, draw: float) -> int | None:
    """The shadow version when a uniform `draw` in [0, 1) falls within the shadow fraction."""
    if table.shadow_version is not None and draw < table.shadow_fraction:
        return table.shadow_version
    return None
