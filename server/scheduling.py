"""Per-request scheduling parameters: `priority` and `timeout`, resolved against a model's config."""

from __future__ import annotations

import time

from server.errors import InvalidInputError
from server.model_config import BatchingConfig
from server.types import InferRequest


def _integer(request: InferRequest, name: str) -> int | None:
    value = request.parameters.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"request parameter '{name}' must be an integer (int64_param or uint64_param)")
    return value


def priority_of(request: InferRequest, batching: BatchingConfig, label: str) -> int:
    """The queue level: 1 is served first; 0 or absent means the model's default level."""
    priority = _integer(request, "priority")
    if not priority:
        return batching.default_priority_level
    if not 1 <= priority <= batching.priority_levels:
        raise InvalidInputError(
            f"priority {priority} is out of range for model {label}: use 1..{batching.priority_levels} "
            "(1 first) or 0 for the default level; see priority_levels in config.toml [batching]"
        )
    return priority


def deadline_of(request: InferRequest, batching: BatchingConfig) -> tuple[float | None, bool]:
    """The earliest of the transport deadline, the `timeout` parameter (µs) and the model's default timeout.

    Also says whether the server must enforce it itself: true unless the transport deadline is the
    earliest, since the transport then cancels the request on its own.
    """
    now = time.monotonic()
    timeout_us = _integer(request, "timeout")
    own: float | None = None
    if timeout_us is not None:
        if timeout_us < 0:
            raise InvalidInputError(f"request parameter 'timeout' must be >= 0 microseconds, got {timeout_us}")
        if timeout_us > 0:
            own = now + timeout_us / 1e6
    elif batching.default_timeout_us:
        own = now + batching.default_timeout_us / 1e6
    if own is None:
        return request.deadline, False
    if request.deadline is not None and request.deadline <= own:
        return request.deadline, False
    return own, True
