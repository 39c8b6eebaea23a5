"""loadtest.routing_repos and loadtest.routing_bench: valid repositories, and a short real run."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest import routing_bench
from loadtest.routing_repos import CONFIGS, build
from server.model_config import load_model_config
from tests.loadtest.conftest import needs_h2load
from tests.support.onnx_models import identity, write_model

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_the_repositories_differ_only_in_routing(tmp_path: Path) -> None:
    repositories = build(MODELS, tmp_path)
    assert set(repositories) == set(CONFIGS)
    files = {
        name: [(root / "fraud" / v / "model.onnx").read_bytes() for v in ("1", "2")]
        for name, root in repositories.items()
    }
    assert all(versions[0] == versions[1] == files["off"][0] for versions in files.values())  # one model file
    routing = {name: load_model_config(root / "fraud").routing for name, root in repositories.items()}
    assert not routing["off"].weights
    assert routing["decide"].weights == {1: 100, 2: 0} and routing["decide"].sticky_key == "user_id"
    assert routing["decide"].sticky_from == "parameter" and routing["decide-metadata"].sticky_from == "metadata"
    assert routing["on"].weights == {1: 90, 2: 10} and routing["on"].sticky_key == "session"


def test_a_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make models"):
        build(tmp_path, tmp_path / "out")


def test_bad_counts_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert routing_bench.main(["--rounds", "0"]) == 2
    assert "--rounds >= 1" in capsys.readouterr().err


@needs_h2load
def test_a_short_run_measures_every_configuration(tmp_path: Path) -> None:
    write_model(tmp_path, "tiny", identity("FP32"), versions=(1,))
    # one version on disk is enough: build() copies it to versions 1 and 2 of each repository
    result = routing_bench.run("tiny", tmp_path, rounds=1, seconds=0.5, concurrency=8, warmup_s=0.2)
    assert set(result["median_req_per_s"]) == {*CONFIGS, "pinned"}
    assert all(rate > 0 for rate in result["median_req_per_s"].values())
    assert result["ratio_to_off"]["off"] == 1.0 and result["on_over_pinned"] > 0
