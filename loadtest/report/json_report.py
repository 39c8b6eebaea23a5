"""The JSON report: the lossless form of a `RunReport`, read back by `python -m loadtest compare`."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.errors import LoadTestError
from loadtest.results import RunReport


def write_json(report: RunReport, path: Path) -> None:
    """Write `report` to `path` as indented JSON, creating the parent directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")


def read_json(path: Path) -> RunReport:
    """Read a report written by `write_json`; anything unreadable raises `LoadTestError`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LoadTestError(f"cannot read report {path}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LoadTestError(f"report {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise LoadTestError(f"report {path} is not a JSON object")
    try:
        return RunReport.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LoadTestError(f"report {path} is not a load-test report: {type(exc).__name__}: {exc}") from exc
