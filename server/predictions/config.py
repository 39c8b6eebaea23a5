"""The `[telemetry]` section of a model's config.toml: which outputs and inputs are watched, and the drift window."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: At most this many class labels per output; the rest are counted as OTHER_CLASS (bounded label sets).
MAX_CLASSES = 50
OTHER_CLASS = "other"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutputWatchConfig(_Section):
    """Overrides for one output; anything unset is inferred from the ONNX signature and metadata."""

    kind: Literal["auto", "score", "class_probabilities", "class", "off"] = "auto"
    buckets: tuple[float, ...] = ()
    """Score histogram bucket upper bounds, increasing; empty = the reference profile's, else 20 on [0, 1]."""
    class_names: tuple[str, ...] = ()
    """Label of class index 0, 1, ...; empty = the ONNX metadata's `classes`, else the index itself."""

    @model_validator(mode="after")
    def _increasing(self) -> OutputWatchConfig:
        if any(b >= a for a, b in zip(self.buckets[1:], self.buckets, strict=False)):
            raise ValueError("buckets must strictly increase")
        return self


class DriftConfig(_Section):
    """The sliding window of live predictions compared with the version's reference profile."""

    window_s: float = Field(300.0, ge=1.0, le=7 * 86_400.0)
    """Predictions of the last this many seconds..."""
    window_samples: int = Field(0, ge=0)
    """...but at most the latest this many predictions (0 = no cap): a busy model's window then spans less time."""
    min_samples: int = Field(200, ge=1)
    """Fewer predictions in the window report no drift score at all: a handful of samples is noise, not drift."""
    interval_s: float = Field(5.0, ge=0.1, le=3600.0)
    """How often the drift scores are recomputed."""


class TelemetryConfig(_Section):
    """Prediction-distribution telemetry of one model (on by default, with inferred watches)."""

    enabled: bool = True
    """Watch the outputs: `inference_prediction`, `inference_predicted_class_total`, drift."""
    watch_inputs: bool = False
    """Also histogram each feature (column) of 2-D float inputs, for training/serving skew."""
    max_features: int = Field(32, ge=1, le=256)
    """Watch at most the first this many features of each input."""
    class_histograms_max: int = Field(10, ge=0, le=MAX_CLASSES)
    """Class-probability outputs with at most this many classes also get one score histogram per class."""
    outputs: dict[str, OutputWatchConfig] = Field(default_factory=dict)
    """Per-output overrides, e.g. [telemetry.outputs.scores] class_names = ["legit", "fraud"]."""
    drift: DriftConfig = DriftConfig()
