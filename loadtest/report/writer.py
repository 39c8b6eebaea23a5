"""Writing a finished run's reports: report.json first, then the plots, report.md and the console summary.

The measurement is the expensive part, so nothing after it may lose it. report.json is written before anything
else (if the output directory fails, to a new temporary directory, and failing that to stdout). Every later step
that fails costs one line on stderr, never the run. Plots are optional: without matplotlib they are skipped with
one line saying how to get them.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO, TypeVar

from loadtest.report.json_report import write_json
from loadtest.report.markdown import write_markdown
from loadtest.report.plots import plots_unavailable, write_plots
from loadtest.report.terminal import format_ratios, format_table
from loadtest.results import RunReport

T = TypeVar("T")


class _Steps:
    """Runs reporting steps; a step that raises is reported in one line and counted, and the next one runs."""

    def __init__(self, err: TextIO, results: str) -> None:
        self.failed = 0
        self._err = err
        self._results = results

    def run(self, what: str, action: Callable[[], T]) -> T | None:
        try:
            return action()
        except Exception as error:  # any failure here must leave the measured results where they are
            self.failed += 1
            print(f"loadtest: {what} failed ({type(error).__name__}: {error}); {self._results}", file=self._err)
            return None


def write_reports(
    report: RunReport, output: Path, *, plots: bool = True, out: TextIO | None = None, err: TextIO | None = None
) -> bool:
    """Write every report of `report` under `output` and print the summary; False if any step failed."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    json_path = _save_json(report, output, out, err)
    if json_path is None:
        return False
    output = json_path.parent
    steps = _Steps(err, f"the results are in {json_path}")
    plot_files: list[str] = []
    plots_note = ""
    if plots:
        plots_note = plots_unavailable() or ""
        if plots_note:
            print(f"loadtest: {plots_note}", file=err)
        else:
            written = steps.run("plotting", lambda: write_plots(report, output)) or []
            plot_files = [path.name for path in written]
    markdown = output / "report.md"

    def write_md() -> Path:
        write_markdown(report, markdown, plot_files, plots_note)
        return markdown

    written_paths = [str(path) for path in (json_path, steps.run("report.md", write_md)) if path is not None]

    def summary() -> None:
        print(format_table(report.levels), file=out)
        if report.ratios:
            print(format_ratios(report.ratios), file=out)
        print(f"reports: {', '.join(written_paths)}", file=out)

    steps.run("the summary", summary)
    return steps.failed == 0


def _save_json(report: RunReport, output: Path, out: TextIO, err: TextIO) -> Path | None:
    """report.json under `output`, else under a new temporary directory; None if it could only be printed."""
    try:
        write_json(report, output / "report.json")
        return output / "report.json"
    except Exception as error:
        reason = f"{type(error).__name__}: {error}"
    try:
        fallback = Path(tempfile.mkdtemp(prefix="loadtest-")) / "report.json"
        write_json(report, fallback)
    except Exception:
        print(f"loadtest: cannot write report.json ({reason}); the results follow on stdout", file=err)
        print(json.dumps(report.to_dict(), indent=2), file=out)
        return None
    print(f"loadtest: cannot write {output / 'report.json'} ({reason}); wrote {fallback} instead", file=err)
    return fallback
