"""Canary verdicts: the error-rate test, the latency check, the minimum sample, promotion steps."""

from __future__ import annotations

import pytest

from server.routing.config import JudgeConfig
from server.routing.judge import Outcome, WindowStats, judge_canary, next_step, quantile, wilson_lower

BOUNDS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
CONFIG = JudgeConfig(enabled=True, min_requests=50)


def stats(requests: int, errors: int = 0, latency_bucket: int = 1) -> WindowStats:
    """`requests` of which `errors` failed; the successful ones all in one latency bucket."""
    latency = [0] * (len(BOUNDS) + 1)
    latency[latency_bucket] = requests - errors
    return WindowStats(requests, errors, tuple(latency))


def test_wilson_lower_bound() -> None:
    assert wilson_lower(0, 100, 2.33) == 0.0
    assert wilson_lower(0, 0, 2.33) == 0.0
    assert 0.3 < wilson_lower(50, 100, 2.33) < 0.5
    assert wilson_lower(100, 100, 2.33) > 0.9


def test_quantile_interpolates_within_the_bucket() -> None:
    # 100 requests: 50 in (0, 1 ms], 50 in (1 ms, 2 ms]
    latency = (50, 50, 0, 0, 0, 0, 0, 0)
    assert quantile(latency, BOUNDS, 0.5) == pytest.approx(0.001)
    assert quantile(latency, BOUNDS, 0.99) == pytest.approx(0.001 + 0.001 * 49 / 50)
    assert quantile((0,) * 8, BOUNDS, 0.99) is None
    assert quantile((0, 0, 0, 0, 0, 0, 0, 5), BOUNDS, 0.99) == BOUNDS[-1]  # +Inf reports the last bound


def test_no_verdict_below_the_minimum_sample() -> None:
    verdict = judge_canary(stats(10_000), stats(49, errors=49), CONFIG, BOUNDS)
    assert verdict.outcome is Outcome.WAITING
    assert verdict.evidence["canary_requests"] == 49


def test_a_canary_with_many_errors_fails_on_the_error_rate() -> None:
    verdict = judge_canary(stats(10_000, errors=10), stats(100, errors=30), CONFIG, BOUNDS)
    assert verdict.outcome is Outcome.FAILING and verdict.reasons == ("error_rate",)
    assert verdict.evidence["canary_error_rate"] == pytest.approx(0.3)


def test_a_few_unlucky_errors_at_low_traffic_prove_nothing() -> None:
    # 2 errors in 60 (3.3 %) against a 1 % stable: the lower bound at 99 % stays under 1 % + 1 %
    assert judge_canary(stats(10_000, errors=100), stats(60, errors=2), CONFIG, BOUNDS).outcome is Outcome.HEALTHY


def test_a_slower_canary_fails_on_latency_but_jitter_on_a_tiny_model_does_not() -> None:
    slow = judge_canary(stats(1000, latency_bucket=1), stats(100, latency_bucket=5), CONFIG, BOUNDS)
    assert slow.outcome is Outcome.FAILING and slow.reasons == ("latency",)
    assert slow.evidence["canary_p99_s"] > 2 * slow.evidence["stable_p99_s"]
    # 2 ms against 1 ms is twice as slow, but within min_latency_delta_s (25 ms)
    jitter = judge_canary(stats(1000, latency_bucket=0), stats(100, latency_bucket=1), CONFIG, BOUNDS)
    assert jitter.outcome is Outcome.HEALTHY


def test_an_identical_canary_is_healthy() -> None:
    verdict = judge_canary(stats(5000, errors=5), stats(500, errors=1), CONFIG, BOUNDS)
    assert verdict.outcome is Outcome.HEALTHY and verdict.reasons == ()


def test_next_step() -> None:
    steps = (5, 25, 50, 100)
    assert next_step(steps, 5, 100) == 25
    assert next_step(steps, 10, 100) == 25
    assert next_step(steps, 1, 20) == 25  # 1 of 20 is 5 %
    assert next_step(steps, 100, 100) is None
    assert next_step((), 5, 100) is None
