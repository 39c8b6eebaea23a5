"""The P5 memory tool measures a real server with and without one model loaded."""

from __future__ import annotations

from loadtest.memory import measure
from tests.conftest import EXAMPLE_MODELS


def test_memory_of_one_loaded_version() -> None:
    result = measure(EXAMPLE_MODELS, "fraud", ["--intra-op-threads", "1"])
    assert result["model"] == "fraud" and result["file_bytes"] > 0
    assert result["rss_empty_mb"] > 20 and result["rss_loaded_mb"] > 0
    assert result["budget_mb"] == round(1.5 * result["file_bytes"] / 1e6 + 50, 1)
    # A tiny model must fit its budget easily; a broken measurement (e.g. a crashed server) would not.
    assert result["within_budget"] is True
