"""What crosses the supervisor <-> worker pipe survives the trip through JSON unchanged."""

from __future__ import annotations

import json

import pytest

from server.coordination.errors import error_fields, raise_reply_error
from server.coordination.messages import (
    drift_score_from_json,
    drift_score_to_json,
    status_from_json,
    status_to_json,
    target_from_json,
    target_to_json,
)
from server.errors import ModelLoadError, ModelNotFoundError, ServerError, status_name
from server.predictions.monitor import DriftScore, Series
from server.routing.config import JudgeConfig
from server.routing.judge import Outcome, Verdict
from server.traffic.judge import CanaryStatus, JudgeTarget


def test_judge_targets_and_verdicts_round_trip() -> None:
    config = JudgeConfig(enabled=True, interval_s=2.0, steps=(5, 50, 100))
    target = JudgeTarget("m", "fp", {1: 90, 2: 10}, 1, (2,), config, paused=True)
    assert target_from_json(json.loads(json.dumps(target_to_json(target)))) == target
    status = CanaryStatus(
        Verdict(Outcome.FAILING, ("error_rate",), {"canary_errors": 7.0}), 2, "2026-11-30T00:00:00+00:00"
    )
    assert status_from_json(json.loads(json.dumps(status_to_json(status)))) == status


def test_drift_scores_round_trip() -> None:
    scores = [
        DriftScore("fraud", 2, Series("histogram", "scores", "fraud"), "psi", 0.1234567890123, 5000),
        DriftScore("fraud", 1, Series("classes", "label"), "js", 0.0, 400),
    ]
    for score in scores:
        assert drift_score_from_json(json.loads(json.dumps(drift_score_to_json(score)))) == score
    assert scores[0].series.label == "scores[fraud]"


def test_errors_cross_the_pipe_with_their_status_and_message() -> None:
    with pytest.raises(ServerError, match="version 2: corrupt") as caught:
        raise_reply_error(error_fields(ModelLoadError("version 2: corrupt")))
    assert status_name(caught.value) == "INVALID_ARGUMENT"
    with pytest.raises(ModelNotFoundError, match="nope"):
        raise_reply_error(error_fields(ModelNotFoundError("model 'nope'")))
    raise_reply_error({})  # a reply without an error raises nothing
