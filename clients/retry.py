"""Retry policy and the one retry loop (sync and asyncio) shared by both clients.

Only ``UNAVAILABLE`` is retried: the server is unreachable, starting or shutting
down, so the request never ran. Every other status is final and raised at once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from clients.errors import InferenceServerError, status_code

T = TypeVar("T")

#: Status codes after which a call is tried again.
RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter for calls that fail with ``UNAVAILABLE``.

    Attributes:
        max_attempts: total tries, the first included (1 disables retries).
        initial_backoff: seconds to wait after the first failed attempt (before jitter).
        max_backoff: cap on the un-jittered wait.
        multiplier: growth factor of the wait from one attempt to the next.
        jitter: relative spread; the wait is scaled by a factor uniform in [1 - jitter, 1 + jitter].
    """

    max_attempts: int = 3
    initial_backoff: float = 0.05
    max_backoff: float = 1.0
    multiplier: float = 2.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_backoff < 0 or self.max_backoff < 0:
            raise ValueError("initial_backoff and max_backoff must be >= 0")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within [0, 1], got {self.jitter}")

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based) before the next one.

        ``min(max_backoff, initial_backoff * multiplier ** (attempt - 1))`` scaled by
        ``1 + jitter * (2 * rng() - 1)``; ``rng`` returns floats in [0, 1) like ``random.random``.
        Pure apart from what ``rng`` does.
        """
        if attempt < 1:
            raise ValueError(f"attempt is 1-based, got {attempt}")
        try:
            grown = self.initial_backoff * self.multiplier ** (attempt - 1)
        except OverflowError:
            grown = self.max_backoff
        base = min(self.max_backoff, grown)
        return base * (1.0 + self.jitter * (2.0 * rng() - 1.0))


class _Attempts:
    """Counts the tries of one call and decides, after each failure, to wait or to give up."""

    def __init__(self, policy: RetryPolicy, rng: Callable[[], float]) -> None:
        self._policy = policy
        self._rng = rng
        self._attempt = 1

    def delay_after(self, error: grpc.RpcError) -> float:
        """The wait before the next try, or raise InferenceServerError if the call is done."""
        if status_code(error) not in RETRYABLE_CODES or self._attempt >= self._policy.max_attempts:
            raise InferenceServerError.from_rpc_error(error, attempts=self._attempt) from error
        delay = self._policy.backoff(self._attempt, self._rng)
        self._attempt += 1
        return delay


def call_with_retry(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
) -> T:
    """Run ``call`` until it succeeds, retrying ``UNAVAILABLE`` as ``policy`` allows.

    Any ``grpc.RpcError`` that ends the loop is raised as InferenceServerError.
    """
    attempts = _Attempts(policy, rng)
    while True:
        try:
            return call()
        except grpc.RpcError as error:
            sleep(attempts.delay_after(error))


async def call_with_retry_async(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: Callable[[], float] = random.random,
) -> T:
    """The asyncio form of :func:`call_with_retry`: ``call`` returns an awaitable, waits use ``sleep``."""
    attempts = _Attempts(policy, rng)
    while True:
        try:
            return await call()
        except grpc.RpcError as error:
            await sleep(attempts.delay_after(error))
