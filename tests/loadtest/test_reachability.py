"""Backing off from a server that died: the rules on a fake clock, then real levels whose server stops mid-way."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest

from loadtest import runner
from loadtest.cli import main
from loadtest.engines.python_engine import LoadPlan, Samples, run_python_load
from loadtest.engines.reachability import FIRST_DELAY_S, MAX_DELAY_S, MIN_FAILURES, WINDOW_S, Reachability
from loadtest.inputs import encode_request
from loadtest.measure import summarize
from loadtest.results import LevelResult
from tests.support.onnx_models import identity, write_model
from tests.support.servers import ThreadedServer


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def failing(reach: Reachability, clock: FakeClock, seconds: float, code: str = "UNAVAILABLE") -> None:
    """One failure every 10 ms for `seconds`."""
    for _ in range(round(seconds / 0.01)):
        reach.record(code)
        clock.now += 0.01


def test_down_only_once_every_request_of_a_window_failed_as_unreachable() -> None:
    clock = FakeClock()
    reach = Reachability(give_up_s=5.0, clock=clock)
    failing(reach, clock, WINDOW_S / 2)
    assert not reach.down  # too short a streak
    failing(reach, clock, WINDOW_S)
    assert reach.down and not reach.gave_up
    assert reach.unreachable_s == pytest.approx(1.5 * WINDOW_S)
    reach.record("OK")  # the server answered: back to full load
    assert not reach.down and reach.unreachable_s == 0.0


def test_a_single_slow_failure_is_not_a_window() -> None:
    clock = FakeClock()
    reach = Reachability(clock=clock)
    for _ in range(MIN_FAILURES - 1):
        reach.record("UNAVAILABLE")
        clock.now += 10 * WINDOW_S
    assert not reach.down


@pytest.mark.parametrize("code", ["RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "INVALID_ARGUMENT"])
def test_overload_and_other_errors_come_from_a_live_server(code: str) -> None:
    clock = FakeClock()
    reach = Reachability(clock=clock)
    failing(reach, clock, 1.0)
    assert reach.down
    reach.record(code)
    assert not reach.down
    failing(reach, clock, 10.0, code)
    assert not reach.down and not reach.gave_up


def test_backoff_doubles_up_to_the_cap_and_resets_on_an_answer() -> None:
    clock = FakeClock()
    reach = Reachability(clock=clock)
    failing(reach, clock, 1.0)
    delays = [reach.next_delay() for _ in range(10)]
    assert delays[:3] == [FIRST_DELAY_S, 2 * FIRST_DELAY_S, 4 * FIRST_DELAY_S]
    assert max(delays) == delays[-1] == MAX_DELAY_S
    assert all(later >= earlier for earlier, later in itertools.pairwise(delays))
    reach.record("OK")
    assert reach.next_delay() == FIRST_DELAY_S


def test_gives_up_after_being_unreachable_for_long_enough() -> None:
    clock = FakeClock()
    reach = Reachability(give_up_s=2.0, clock=clock)
    failing(reach, clock, 1.9)
    assert reach.down and not reach.gave_up
    clock.now += 0.2  # no request needed: time alone counts while nothing answers
    assert reach.gave_up


def samples(**unreachable: object) -> Samples:
    sent = np.asarray([1.0, 1.5, 2.0])
    codes = ["OK", "UNAVAILABLE", "UNAVAILABLE"]
    return Samples(sent, sent + 0.001, codes, 0.0, 4.0, processes=2, **unreachable)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("unreachable", "flagged", "note"),
    [
        ({"unreachable_s": 1.5, "stopped": True, "processes_gave_up": 2}, True, "stopped early: every request failed"),
        ({"unreachable_s": 2.0}, False, "the server stopped answering 2.0 s before the level ended"),
        ({"processes_gave_up": 1}, False, "1 of 2 client processes stopped early"),
        ({"not_sent": 40}, False, "40 scheduled requests were not sent while backing off"),
        ({}, False, None),
    ],
    ids=["stopped", "down-at-the-end", "one-process", "open-loop-not-sent", "fine"],
)
def test_the_level_says_what_the_backoff_did(unreachable: dict[str, object], flagged: bool, note: str | None) -> None:
    plan = LoadPlan("closed", 4, 0.0, 4.0, processes=2, timeout_s=1.0)
    level = summarize(samples(**unreachable), plan, 1, 2, 10.0)
    assert level.unreachable is flagged
    assert level.requests_failed == 2 and level.errors_by_code == {"UNAVAILABLE": 2}
    if note is None:
        assert level.notes == []
    else:
        (text,) = level.notes
        assert text.startswith(note), text


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    write_model(tmp_path / "models", "identity", identity("FP32"))
    return tmp_path / "models"


@pytest.fixture
def dying_server(repository: Path) -> Iterator[tuple[ThreadedServer, threading.Event]]:
    """A server and an event: set it and the server stops (at most once, also at teardown)."""
    server = ThreadedServer(repository).__enter__()
    kill = threading.Event()
    stopped = threading.Event()

    def stop_when_told() -> None:
        kill.wait()
        server.__exit__(None, None, None)
        stopped.set()

    thread = threading.Thread(target=stop_when_told, daemon=True)
    thread.start()
    yield server, kill
    kill.set()
    thread.join(timeout=30)
    assert stopped.is_set()


def kill_after(kill: threading.Event, seconds: float) -> None:
    threading.Timer(seconds, kill.set).start()


PAYLOAD = encode_request("identity", "", {"INPUT0": np.zeros((1, 3), np.float32)})


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_a_level_whose_server_dies_backs_off_then_stops(
    dying_server: tuple[ThreadedServer, threading.Event], mode: Literal["closed", "open"]
) -> None:
    server, kill = dying_server
    level = 8.0 if mode == "closed" else 400.0
    plan = LoadPlan(mode, level, 0.5, 20.0, processes=2, timeout_s=2.0, max_unreachable_s=1.5)
    started = time.monotonic()
    samples = run_python_load(server.address, PAYLOAD, plan, on_measure_start=lambda: kill_after(kill, 0.5))
    elapsed = time.monotonic() - started
    codes = np.asarray(samples.codes)
    assert (codes == "OK").sum() > 50  # it ran before the server went away
    assert samples.stopped and samples.unreachable_s is not None and samples.unreachable_s >= 1.5
    assert samples.processes_gave_up == 2
    assert elapsed < 10, "the level should stop soon after the server has been unreachable for 1.5 s"
    failed = int((codes == "UNAVAILABLE").sum())
    # Without backoff a dead server fails thousands of calls a second for the rest of the 20 s level.
    assert 0 < failed < 3_000, failed
    failed_at = np.asarray(samples.finished)[codes == "UNAVAILABLE"]
    # Once every request of a window has failed, each process sends one probe per delay (0.05, 0.1, 0.2 ... s).
    probes = int((failed_at > failed_at.min() + WINDOW_S + 0.3).sum())
    assert probes <= 2 * 8, probes
    if mode == "open":
        assert samples.not_sent > 0


def test_the_run_stops_at_the_dead_level_and_keeps_what_it_measured(
    dying_server: tuple[ThreadedServer, threading.Event],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, kill = dying_server
    out = tmp_path / "report"
    args = ["--target", server.address, "--model", "identity", "--concurrency", "2,4,8", "--max-unreachable", "1"]
    timing = ["--warmup", "0.3", "--window", "1", "--windows", "2", "--processes", "1", "--no-plots"]
    levels_started = []

    def run_level(*args: Any, **kwargs: Any) -> LevelResult:
        levels_started.append(args[4])
        if len(levels_started) == 2:  # the server dies during the second level
            kill_after(kill, 1.5)
        return real_run_level(*args, **kwargs)

    real_run_level = runner.run_level
    monkeypatch.setattr(runner, "run_level", run_level)
    assert main([*args, *timing, "--output-dir", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    levels = report["levels"]
    assert [level["level"] for level in levels] == [2.0, 4.0]
    assert not levels[0]["unreachable"] and levels[0]["requests_failed"] == 0
    assert levels[1]["unreachable"] and any("gave up" in note for note in levels[1]["notes"])
    err = capsys.readouterr().err
    assert "levels 8 skipped: the server is unreachable" in err
    assert "stopped early" in err
    assert levels_started == [2.0, 4.0]
