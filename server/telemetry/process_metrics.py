"""process_* metrics for a --workers server: the supervisor and its workers as one process tree.

One process registers prometheus_client's ProcessCollector directly. Under --workers the scrape
reaches the supervisor only, so this collector reads every process of the tree from /proc and adds
them up: CPU seconds, resident and virtual memory and open file descriptors are summed; the start
time is the earliest and the descriptor limit the lowest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from prometheus_client import ProcessCollector
from prometheus_client.metrics_core import Metric

#: Samples that are not summed over the tree: the smallest value is the meaningful one.
_SMALLEST = frozenset({"process_start_time_seconds", "process_max_fds"})


class ProcessTreeCollector:
    """Registered on the supervisor's registry; `pids` gives the live workers' pids at each scrape."""

    def __init__(self, pids: Callable[[], Iterable[int]]) -> None:
        self._pids = pids

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        families: dict[str, Metric] = {}
        values: dict[tuple[str, str], float] = {}  # (family, sample) -> value over the tree
        for pid in (os.getpid(), *self._pids()):
            # registry=None: read this pid's /proc once, without registering anything.
            for family in ProcessCollector(pid=_fixed(pid), registry=None).collect():
                families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
                for sample in family.samples:
                    key = (family.name, sample.name)
                    if key not in values:
                        values[key] = sample.value
                    elif sample.name in _SMALLEST:
                        values[key] = min(values[key], sample.value)
                    else:
                        values[key] += sample.value
        for (family_name, sample_name), value in values.items():
            families[family_name].add_sample(sample_name, {}, value)
        return list(families.values())


def _fixed(pid: int) -> Callable[[], int]:
    return lambda: pid
