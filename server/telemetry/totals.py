"""Per-version traffic totals read back from the metric families, for the canary judge.

The judge reads what a scrape would read, so one process and the --workers supervisor (whose
registry merges every worker's files) feed it the same way, as Flagger reads Prometheus.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric

from server.telemetry.metrics import LATENCY_BUCKETS

#: Outcomes that are not the version's fault: the caller gave up.
NOT_ERRORS = frozenset({"OK", "CANCELLED"})


@dataclass(frozen=True, slots=True)
class VersionTotals:
    """Cumulative counts of one version since the process (or the workers) started."""

    requests: int
    """Answered requests (CANCELLED ones excluded)."""
    errors: int
    latency: tuple[int, ...]
    """Successful requests per latency bucket (non-cumulative), LATENCY_BUCKETS then +Inf."""


def read_totals(families: Iterable[Metric]) -> dict[tuple[str, int], VersionTotals]:
    """(model, version) -> totals, from collected metric families (a registry's `collect()`)."""
    ok: dict[tuple[str, int], float] = {}
    errors: dict[tuple[str, int], float] = {}
    cumulative: dict[tuple[str, int], list[float]] = {}
    slots = {bound: index for index, bound in enumerate((*LATENCY_BUCKETS, math.inf))}
    for family in families:
        if family.name == "inference_requests":
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                key = _key(sample.labels)
                if key is None:
                    continue
                code = sample.labels.get("code", "")
                if code == "OK":
                    ok[key] = ok.get(key, 0.0) + sample.value
                elif code not in NOT_ERRORS:
                    errors[key] = errors.get(key, 0.0) + sample.value
        elif family.name == "inference_request_duration_seconds":
            for sample in family.samples:
                key = _key(sample.labels)
                if key is None or not sample.name.endswith("_bucket"):
                    continue
                slot = slots.get(float(sample.labels.get("le", "nan")))
                if slot is not None:
                    buckets = cumulative.setdefault(key, [0.0] * len(slots))
                    buckets[slot] += sample.value
    totals = {}
    for key in set(ok) | set(errors) | set(cumulative):
        running = cumulative.get(key, [0.0] * len(slots))
        latency = tuple(int(b - a) for a, b in zip([0.0, *running[:-1]], running, strict=True))
        failed = int(errors.get(key, 0))
        totals[key] = VersionTotals(int(ok.get(key, 0)) + failed, failed, latency)
    return totals


def _key(labels: dict[str, str]) -> tuple[str, int] | None:
    version = labels.get("version", "")
    if not version.isdecimal():
        return None
    return labels.get("model", ""), int(version)
