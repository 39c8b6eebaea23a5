"""What a run prints while it works: a perf_analyzer-style summary table and a one-line progress display."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

from loadtest.report.formatting import (
    format_errors,
    format_level,
    format_ms,
    format_number,
    ratio_legend,
    sorted_levels,
    text_table,
)
from loadtest.results import LevelResult

TABLE_HEADERS = ("mode", "level", "infer/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "errors", "stable")


def format_table(levels: Sequence[LevelResult]) -> str:
    """One row per level (closed loop first), fixed-width columns; "-" where latency was not measured."""
    rows = []
    for level in sorted_levels(levels):
        latency = level.latency
        rows.append(
            (
                level.mode,
                format_level(level.level),
                format_number(level.throughput_infer_per_s),
                format_ms(latency.p50_ms if latency else None),
                format_ms(latency.p90_ms if latency else None),
                format_ms(latency.p99_ms if latency else None),
                format_ms(latency.p999_ms if latency else None),
                format_errors(level.errors_by_code) if level.errors_by_code else str(level.requests_failed),
                "yes" if level.stable else "no",
            )
        )
    return text_table(TABLE_HEADERS, rows)


def format_ratios(ratios: Mapping[str, float]) -> str:
    """`name: value` per ratio, then a legend line per kind of ratio saying what it divides by what."""
    lines = [f"{name}: {value:.3g}" for name, value in ratios.items()]
    return "\n".join(lines + [f"legend: {line}" for line in ratio_legend(ratios)])


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


class Progress:
    """A status line for the level being measured.

    On a terminal the line is rewritten in place (`\\r`) at most every `tty_interval_s`; on anything else
    (a pipe, a log file, a `StringIO`) it prints whole lines, at most every `plain_interval_s` per label,
    plus one whenever the phase changes, so logs stay short.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        tty_interval_s: float = 0.2,
        plain_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._tty = _is_tty(self._stream)
        self._interval_s = tty_interval_s if self._tty else plain_interval_s
        self._clock = clock
        self._last_write: float | None = None
        self._last_key: tuple[str, str] | None = None
        self._line_width = 0

    def update(self, label: str, phase: str, elapsed_s: float, total_s: float, completed: int, errors: int) -> None:
        """Show progress of `label` (e.g. "closed c=64") in `phase` (e.g. "warmup", "measure")."""
        now = self._clock()
        key = (label, phase)
        if key == self._last_key and self._last_write is not None and now - self._last_write < self._interval_s:
            return
        self._last_key, self._last_write = key, now
        self._emit(
            _status(label, phase, elapsed_s=elapsed_s, total_s=total_s, completed=completed, errors=errors), final=False
        )

    def done(self, label: str, summary: str) -> None:
        """Finish `label` with a permanent line; the next `update` starts afresh."""
        self._last_key = self._last_write = None
        self._emit(f"{label}: {summary}", final=True)

    def _emit(self, text: str, *, final: bool) -> None:
        if self._tty:
            padding = " " * max(0, self._line_width - len(text))
            self._line_width = 0 if final else len(text)
            self._write(f"\r{text}{padding}" + ("\n" if final else ""))
        else:
            self._write(text + "\n")

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stream must not stop the measurement


def _status(label: str, phase: str, *, elapsed_s: float, total_s: float, completed: int, errors: int) -> str:
    fraction = min(1.0, max(0.0, elapsed_s / total_s)) if total_s > 0 else 0.0
    filled = round(fraction * 20)
    bar = "#" * filled + "-" * (20 - filled)
    return f"{label} {phase} [{bar}] {elapsed_s:5.1f}/{total_s:.0f}s  {completed:,} ok  {errors:,} err"
