"""The backoff schedule and the shared retry loop, driven with fake calls, errors and sleeps."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest

from clients.errors import InferenceServerError
from clients.retry import RetryPolicy, call_with_retry, call_with_retry_async

NO_JITTER = RetryPolicy(max_attempts=3, initial_backoff=0.1, max_backoff=0.5, multiplier=2.0, jitter=0.0)
FINAL_CODES = [
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNIMPLEMENTED,
]


class FakeRpcError(grpc.RpcError):  # type: ignore[misc, unused-ignore]
    """Looks like a failed grpc call: code() and details()."""

    def __init__(self, code: grpc.StatusCode, details: str = "boom") -> None:
        super().__init__(details)
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class ScriptedCall:
    """A call that raises the scripted errors in order, then returns "ok"; counts its invocations."""

    def __init__(self, *errors: BaseException) -> None:
        self._errors: Iterator[BaseException] = iter(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        error = next(self._errors, None)
        if error is not None:
            raise error
        return "ok"

    async def run_async(self) -> str:
        return self()


def unavailable(times: int) -> list[BaseException]:
    return [FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused") for _ in range(times)]


def constant(value: float) -> Callable[[], float]:
    return lambda: value


# ------------------------------------------------------------------ schedule


def test_backoff_grows_geometrically_and_is_capped() -> None:
    delays = [NO_JITTER.backoff(attempt) for attempt in range(1, 6)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


def test_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.initial_backoff, policy.max_backoff) == (3, 0.05, 1.0)
    assert (policy.multiplier, policy.jitter) == (2.0, 0.1)
    assert policy.backoff(1, constant(0.5)) == pytest.approx(0.05)
    assert policy.backoff(2, constant(0.5)) == pytest.approx(0.1)


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 0.8), (0.25, 0.9), (0.5, 1.0), (0.75, 1.1)])
def test_jitter_scales_within_bounds(draw: float, factor: float) -> None:
    policy = RetryPolicy(initial_backoff=1.0, max_backoff=10.0, jitter=0.2)
    assert policy.backoff(1, constant(draw)) == pytest.approx(factor)
    assert policy.backoff(3, constant(draw)) == pytest.approx(4.0 * factor)


def test_backoff_is_pure_given_the_random_source() -> None:
    policy = RetryPolicy(jitter=0.5)
    assert policy.backoff(2, constant(0.3)) == policy.backoff(2, constant(0.3))


def test_huge_attempt_number_is_capped_not_overflowing() -> None:
    assert NO_JITTER.backoff(100_000) == pytest.approx(0.5)


def test_attempt_numbers_are_one_based() -> None:
    with pytest.raises(ValueError, match="1-based"):
        NO_JITTER.backoff(0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"initial_backoff": -1.0},
        {"max_backoff": -0.1},
        {"multiplier": 0.5},
        {"jitter": 1.5},
        {"jitter": -0.1},
    ],
)
def test_invalid_policy_is_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- sync loop


def test_success_needs_no_retry() -> None:
    call, sleeps = ScriptedCall(), list[float]()
    assert call_with_retry(call, NO_JITTER, sleep=sleeps.append) == "ok"
    assert (call.calls, sleeps) == (1, [])


def test_unavailable_is_retried_with_the_backoff_schedule() -> None:
    call, sleeps = ScriptedCall(*unavailable(2)), list[float]()
    assert call_with_retry(call, NO_JITTER, sleep=sleeps.append) == "ok"
    assert call.calls == 3
    assert sleeps == pytest.approx([0.1, 0.2])


def test_jitter_uses_the_injected_random_source() -> None:
    policy = RetryPolicy(max_attempts=2, initial_backoff=1.0, jitter=0.5)
    sleeps: list[float] = []
    call_with_retry(ScriptedCall(*unavailable(1)), policy, sleep=sleeps.append, rng=constant(1.0))
    assert sleeps == pytest.approx([1.5])


def test_gives_up_after_max_attempts() -> None:
    call, sleeps = ScriptedCall(*unavailable(5)), list[float]()
    with pytest.raises(InferenceServerError) as info:
        call_with_retry(call, NO_JITTER, sleep=sleeps.append)
    assert call.calls == 3
    assert sleeps == pytest.approx([0.1, 0.2])
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert info.value.attempts == 3
    assert info.value.details == "connection refused"
    assert str(info.value) == "UNAVAILABLE: connection refused (after 3 attempts)"
    assert isinstance(info.value.__cause__, FakeRpcError)


def test_single_attempt_policy_never_sleeps() -> None:
    call, sleeps = ScriptedCall(*unavailable(1)), list[float]()
    with pytest.raises(InferenceServerError) as info:
        call_with_retry(call, RetryPolicy(max_attempts=1), sleep=sleeps.append)
    assert (call.calls, sleeps, info.value.attempts) == (1, [], 1)


@pytest.mark.parametrize("code", FINAL_CODES, ids=lambda code: code.name)
def test_other_codes_are_raised_at_once(code: grpc.StatusCode) -> None:
    call, sleeps = ScriptedCall(FakeRpcError(code, "nope"), *unavailable(1)), list[float]()
    with pytest.raises(InferenceServerError) as info:
        call_with_retry(call, NO_JITTER, sleep=sleeps.append)
    assert (call.calls, sleeps) == (1, [])
    assert (info.value.code, info.value.details, info.value.attempts) == (code, "nope", 1)
    assert str(info.value) == f"{code.name}: nope"


def test_final_code_after_retries_stops_the_loop() -> None:
    call = ScriptedCall(*unavailable(1), FakeRpcError(grpc.StatusCode.NOT_FOUND, "no model"))
    sleeps: list[float] = []
    with pytest.raises(InferenceServerError) as info:
        call_with_retry(call, RetryPolicy(max_attempts=5, jitter=0.0), sleep=sleeps.append)
    assert (call.calls, len(sleeps), info.value.code, info.value.attempts) == (2, 1, grpc.StatusCode.NOT_FOUND, 2)


def test_non_grpc_errors_propagate_untouched() -> None:
    call, sleeps = ScriptedCall(KeyError("bug")), list[float]()
    with pytest.raises(KeyError):
        call_with_retry(call, NO_JITTER, sleep=sleeps.append)
    assert (call.calls, sleeps) == (1, [])


def test_rpc_error_without_status_becomes_unknown() -> None:
    call = ScriptedCall(grpc.RpcError("opaque"))
    with pytest.raises(InferenceServerError) as info:
        call_with_retry(call, NO_JITTER, sleep=lambda _: None)
    assert (info.value.code, info.value.details) == (grpc.StatusCode.UNKNOWN, "opaque")


# --------------------------------------------------------------- async loop


class AsyncSleepRecorder:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def test_async_unavailable_is_retried_with_the_backoff_schedule() -> None:
    call, sleep = ScriptedCall(*unavailable(2)), AsyncSleepRecorder()
    assert await call_with_retry_async(call.run_async, NO_JITTER, sleep=sleep) == "ok"
    assert call.calls == 3
    assert sleep.delays == pytest.approx([0.1, 0.2])


async def test_async_gives_up_after_max_attempts() -> None:
    call, sleep = ScriptedCall(*unavailable(5)), AsyncSleepRecorder()
    with pytest.raises(InferenceServerError) as info:
        await call_with_retry_async(call.run_async, NO_JITTER, sleep=sleep)
    assert (call.calls, info.value.code, info.value.attempts) == (3, grpc.StatusCode.UNAVAILABLE, 3)
    assert sleep.delays == pytest.approx([0.1, 0.2])


@pytest.mark.parametrize("code", FINAL_CODES, ids=lambda code: code.name)
async def test_async_other_codes_are_raised_at_once(code: grpc.StatusCode) -> None:
    call, sleep = ScriptedCall(FakeRpcError(code)), AsyncSleepRecorder()
    with pytest.raises(InferenceServerError) as info:
        await call_with_retry_async(call.run_async, NO_JITTER, sleep=sleep)
    assert (call.calls, sleep.delays, info.value.code) == (1, [], code)
