"""The stateful canary judge over scripted traffic totals: intervals, windows, rollbacks, promotions."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from server.routing.changes import ChangeKind, RoutingChange
from server.routing.config import JudgeConfig
from server.routing.judge import Outcome
from server.telemetry.judge_metrics import JudgeMetrics
from server.telemetry.metrics import LATENCY_BUCKETS
from server.telemetry.totals import VersionTotals
from server.traffic.judge import CanaryJudge, JudgeTarget

BUCKETS = len(LATENCY_BUCKETS) + 1


class Traffic:
    """Cumulative totals per (model, version) that a test grows, and a clock it moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self.totals: dict[tuple[str, int], VersionTotals] = {}

    def add(self, version: int, requests: int, errors: int = 0, bucket: int = 2) -> None:
        key = ("m", version)
        old = self.totals.get(key, VersionTotals(0, 0, (0,) * BUCKETS))
        latency = list(old.latency)
        latency[bucket] += requests - errors
        self.totals[key] = VersionTotals(old.requests + requests, old.errors + errors, tuple(latency))


def make(
    config: JudgeConfig, weights: dict[int, int] | None = None
) -> tuple[CanaryJudge, Traffic, list[RoutingChange]]:
    traffic = Traffic()
    applied: list[RoutingChange] = []
    current = dict(weights or {1: 90, 2: 10})

    def targets() -> list[JudgeTarget]:
        stable = max(current, key=lambda v: (current[v], -v))
        canaries = tuple(v for v, w in current.items() if w > 0 and v != stable)
        return [JudgeTarget("m", "fp", dict(current), stable, canaries, config)]

    async def apply(change: RoutingChange) -> None:
        applied.append(change)
        if change.kind is ChangeKind.ROLLBACK:
            current[change.version] = 0
        elif change.kind is ChangeKind.PROMOTE:
            current.update(change.weights)

    judge = CanaryJudge(
        targets=targets,
        totals=lambda: dict(traffic.totals),
        apply=apply,
        metrics=JudgeMetrics(CollectorRegistry()),
        clock=lambda: traffic.now,
    )
    return judge, traffic, applied


CONFIG = JudgeConfig(enabled=True, interval_s=1.0, window_s=5.0, min_requests=20, failure_limit=2)


async def step(judge: CanaryJudge, traffic: Traffic, seconds: float = 1.0) -> list[RoutingChange]:
    traffic.now += seconds
    return await judge.check()


async def test_a_failing_canary_is_rolled_back_after_the_failure_limit() -> None:
    judge, traffic, applied = make(CONFIG)
    traffic.add(1, 0)
    traffic.add(2, 0)
    await step(judge, traffic)  # the first look only sets the baseline
    traffic.add(1, 900, errors=1)
    traffic.add(2, 100, errors=40)
    assert await step(judge, traffic) == []  # one failed check is not enough
    assert judge.status[("m", 2)].verdict.outcome is Outcome.FAILING
    traffic.add(1, 900)
    traffic.add(2, 100, errors=40)
    assert await step(judge, traffic) == []  # a second failure inside the same 5 s window does not count again
    assert judge.status[("m", 2)].failed_checks == 1
    traffic.add(1, 900)
    traffic.add(2, 100, errors=40)
    [change] = await step(judge, traffic, 4.0)
    assert change.kind is ChangeKind.ROLLBACK and change.version == 2 and change.reason == "error_rate"
    assert change.evidence["canary_errors"] == 80 and change.fingerprint == "fp"  # the last 5 s: two checks' worth
    traffic.add(1, 1000)
    assert await step(judge, traffic) == []  # version 2 has no weight now: nothing more to judge
    assert applied == [change]


async def test_checks_wait_for_the_interval() -> None:
    judge, traffic, _ = make(CONFIG)
    traffic.add(1, 10)
    traffic.add(2, 10)
    await step(judge, traffic)
    traffic.add(1, 900)
    traffic.add(2, 100, errors=100)
    assert await step(judge, traffic, 0.5) == []
    assert judge.status[("m", 2)].verdict.outcome is Outcome.WAITING  # still the baseline look: not due yet
    await step(judge, traffic, 0.5)
    assert judge.status[("m", 2)].verdict.outcome is Outcome.FAILING


async def test_at_low_traffic_the_window_stretches_until_the_minimum_sample() -> None:
    judge, traffic, _ = make(CONFIG)
    traffic.add(1, 0)
    traffic.add(2, 0)
    await step(judge, traffic)
    for _ in range(8):  # 3 canary requests a second: a 5 s window holds 15, under min_requests
        traffic.add(1, 30)
        traffic.add(2, 3)
        await step(judge, traffic)
    status = judge.status[("m", 2)]
    assert status.verdict.outcome is Outcome.HEALTHY
    assert status.verdict.evidence["canary_requests"] >= 20


async def test_a_healthy_canary_is_never_rolled_back() -> None:
    judge, traffic, applied = make(CONFIG)
    traffic.add(1, 0)
    traffic.add(2, 0)
    for _ in range(100):
        traffic.add(1, 900, errors=9)  # both at 1 % errors
        traffic.add(2, 100, errors=1)
        await step(judge, traffic)
    assert applied == []
    assert judge.status[("m", 2)].failed_checks == 0


async def test_progressive_promotion_climbs_one_step_per_healthy_check() -> None:
    config = CONFIG.model_copy(update={"steps": (5, 25, 50, 100)})
    judge, traffic, applied = make(config, {1: 95, 2: 5})
    traffic.add(1, 0)
    traffic.add(2, 0)
    await step(judge, traffic)
    for _ in range(12):
        traffic.add(1, 500)
        traffic.add(2, 500)
        await step(judge, traffic)
    promotions = [c for c in applied if c.kind is ChangeKind.PROMOTE]
    assert [c.weights[2] for c in promotions] == [25, 50, 100]
    assert promotions[-1].weights == {1: 0, 2: 100}


async def test_a_paused_judge_gives_no_verdicts() -> None:
    judge, traffic, applied = make(CONFIG)
    judge._targets = lambda: [JudgeTarget("m", "fp", {1: 90, 2: 10}, 1, (2,), CONFIG, paused=True)]
    for _ in range(5):
        traffic.add(1, 900)
        traffic.add(2, 100, errors=100)
        await step(judge, traffic)
    assert applied == [] and ("m", 2) not in judge.status


async def test_the_judge_sleeps_until_the_next_model_is_due() -> None:
    judge, traffic, _ = make(CONFIG)
    assert judge._wait_s() == 0.05  # never checked: due now (the shortest tick)
    await step(judge, traffic, 0.0)
    traffic.now += 0.3
    assert abs(judge._wait_s() - 0.7) < 1e-9
    judge._targets = list  # no judged model: the idle wait
    assert judge._wait_s() == 1.0


async def test_a_changed_config_or_a_disabled_judge_starts_afresh() -> None:
    judge, traffic, _ = make(CONFIG)
    traffic.add(1, 0)
    traffic.add(2, 0)
    await step(judge, traffic)
    traffic.add(1, 900)
    traffic.add(2, 100, errors=50)
    await step(judge, traffic)
    assert judge.status[("m", 2)].failed_checks == 1
    judge._targets = lambda: [JudgeTarget("m", "other-config", {1: 90, 2: 10}, 1, (2,), CONFIG)]
    traffic.add(2, 100, errors=50)  # before the new config's first look: not its traffic
    await step(judge, traffic)
    assert judge.status[("m", 2)].verdict.outcome is Outcome.WAITING  # a new baseline, no old failures
    traffic.add(1, 900)
    traffic.add(2, 100)
    await step(judge, traffic)
    assert judge.status[("m", 2)].verdict.outcome is Outcome.HEALTHY  # judged on traffic since the change only
    judge._targets = list
    await step(judge, traffic)
    assert judge.status == {}
