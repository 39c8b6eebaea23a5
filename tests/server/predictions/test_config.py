"""server.predictions.config: the [telemetry] section validates bounds, bucket order and unknown keys."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from server.predictions.config import MAX_CLASSES, DriftConfig, OutputWatchConfig, TelemetryConfig


def test_defaults_watch_outputs_with_inferred_settings() -> None:
    config = TelemetryConfig()
    assert config.enabled is True
    assert config.watch_inputs is False
    assert config.max_features == 32
    assert config.class_histograms_max == 10
    assert config.outputs == {}
    assert config.drift == DriftConfig(window_s=300.0, window_samples=0, min_samples=200, interval_s=5.0)


def test_nested_output_overrides_parse_from_plain_data() -> None:
    config = TelemetryConfig.model_validate(
        {"outputs": {"scores": {"kind": "class_probabilities", "class_names": ["legit", "fraud"]}}}
    )
    assert config.outputs["scores"] == OutputWatchConfig(kind="class_probabilities", class_names=("legit", "fraud"))
    assert config.outputs["scores"].buckets == ()


@pytest.mark.parametrize("buckets", [(), (0.5,), (0.1, 0.2, 10.0), (-3.0, -1.0, 0.0)])
def test_strictly_increasing_buckets_are_accepted(buckets: tuple[float, ...]) -> None:
    assert OutputWatchConfig(buckets=buckets).buckets == buckets


@pytest.mark.parametrize("buckets", [(0.1, 0.1), (0.2, 0.1), (0.1, 0.5, 0.3)])
def test_buckets_that_do_not_strictly_increase_are_refused(buckets: tuple[float, ...]) -> None:
    with pytest.raises(ValidationError, match="buckets must strictly increase"):
        OutputWatchConfig(buckets=buckets)


@pytest.mark.parametrize(
    ("section", "data"),
    [
        (TelemetryConfig, {"max_features": 0}),
        (TelemetryConfig, {"max_features": 257}),
        (TelemetryConfig, {"class_histograms_max": MAX_CLASSES + 1}),
        (TelemetryConfig, {"class_histograms_max": -1}),
        (TelemetryConfig, {"watch_input": True}),  # misspelt key: extra="forbid"
        (OutputWatchConfig, {"kind": "probabilities"}),
        (DriftConfig, {"window_s": 0.5}),
        (DriftConfig, {"window_s": 7 * 86_400.0 + 1}),
        (DriftConfig, {"window_samples": -1}),
        (DriftConfig, {"min_samples": 0}),
        (DriftConfig, {"interval_s": 0.05}),
        (DriftConfig, {"interval_s": 3601.0}),
    ],
)
def test_out_of_range_or_unknown_settings_are_refused(section: type[Any], data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        section.model_validate(data)


def test_sections_are_frozen() -> None:
    config = TelemetryConfig()
    with pytest.raises(ValidationError):
        config.enabled = False  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.drift.min_samples = 1  # type: ignore[misc]
