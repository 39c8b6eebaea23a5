"""The `[routing]` section of a model's config.toml: version weights, sticky key, shadow, judge."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShadowConfig(_Section):
    """Copy a fraction of the routed requests to another version, off the request path."""

    version: int = Field(ge=1)
    """The version that receives the copies; it must not carry weight itself."""
    fraction: float = Field(1.0, gt=0.0, le=1.0)
    """Share of routed (not pinned) requests that are copied."""
    tolerance: float = Field(1e-3, ge=0.0)
    """Largest |primary - shadow| of a score output that still counts as agreement."""


class JudgeConfig(_Section):
    """Automatic canary analysis: compares each canary with the stable version and rolls it back on failure."""

    enabled: bool = False
    interval_s: float = Field(10.0, ge=0.05, le=3600.0)
    """How often the judge looks at the windows."""
    window_s: float = Field(30.0, ge=0.1, le=86_400.0)
    """The sliding window of traffic each verdict is based on."""
    min_requests: int = Field(50, ge=1)
    """Canary requests in the window before any verdict: fewer prove nothing either way."""
    max_error_rate: float = Field(0.01, ge=0.0, le=1.0)
    """Error-rate margin: the canary fails when its rate exceeds the stable's plus this, with `confidence`."""
    confidence: float = Field(0.99, gt=0.5, lt=1.0)
    """One-sided confidence of the error-rate test."""
    max_latency_ratio: float = Field(2.0, ge=1.0)
    """The canary fails when its p99 latency exceeds the stable's times this..."""
    min_latency_delta_s: float = Field(0.025, ge=0.0)
    """...and by more than this many seconds: on a small model one stalled batch moves a p99 by milliseconds."""
    max_prediction_psi: float = Field(1.0, ge=0.0)
    """The canary fails when its predictions differ from the stable's by more than this PSI (stable as the
    reference; the largest over the watched outputs, both with at least min_requests and the model's drift
    min_samples predictions). Two sound models
    differ by 0.1-0.5; a broken one (a constant, swapped classes) by several units. 0 turns the gate off."""
    failure_limit: int = Field(2, ge=1)
    """Failed checks in a row, over windows that do not overlap, before the rollback (Flagger's `threshold`)."""
    steps: tuple[int, ...] = ()
    """Progressive promotion: the canary's weight after each healthy interval, e.g. [5, 25, 50, 100]."""

    @model_validator(mode="after")
    def _steps_climb(self) -> JudgeConfig:
        if any(not 0 < step <= 100 for step in self.steps):
            raise ValueError("steps are canary weights in percent, each in 1..100")
        if list(self.steps) != sorted(set(self.steps)):
            raise ValueError("steps must strictly increase")
        return self


class RoutingConfig(_Section):
    """How unversioned requests are spread over the versions of a model."""

    weights: dict[int, int] = Field(default_factory=dict)
    """Version -> weight (relative; percentages by convention). A loaded version not listed gets 0."""
    sticky_key: str = ""
    """Request parameter, else gRPC metadata key, whose value pins a caller to a version."""
    sticky_from: Literal["any", "parameter", "metadata"] = "any"
    """Where the sticky key is looked for. Reading gRPC metadata costs grpc.aio about 13,000 CPU instructions
    per request (2 % on a tiny model), paid by every request that does not carry the parameter; "parameter"
    skips it for clients that always send the key as a request parameter."""
    salt: str = ""
    """Mixed into the sticky hash; empty = the model name. Change it to reshuffle every key."""
    shadow: ShadowConfig | None = None
    judge: JudgeConfig = JudgeConfig()

    @model_validator(mode="after")
    def _weights_make_sense(self) -> RoutingConfig:
        if any(version < 1 for version in self.weights):
            raise ValueError("weights are keyed by version numbers (1 or more)")
        if any(weight < 0 for weight in self.weights.values()):
            raise ValueError("weights must not be negative")
        if self.weights and not any(self.weights.values()):
            raise ValueError("at least one version needs a positive weight")
        if self.shadow is not None and self.weights.get(self.shadow.version, 0) > 0:
            raise ValueError(f"shadow version {self.shadow.version} also carries weight; shadow a version with none")
        if not self.weights and (self.shadow is not None or self.sticky_key or self.judge.enabled):
            raise ValueError("sticky_key, shadow and judge need `weights` (which versions get traffic)")
        if self.sticky_key and (len(self.sticky_key) > 128 or not self.sticky_key.isprintable()):
            raise ValueError("sticky_key must be a printable name of at most 128 characters")
        return self
