from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class VersionRequest(_message.Message):
    __slots__ = ("model", "version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ("model", "version", "reason")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    reason: str
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class SetWeightsRequest(_message.Message):
    __slots__ = ("model", "weights")
    class WeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    model: str
    weights: _containers.ScalarMap[int, int]
    def __init__(self, model: _Optional[str] = ..., weights: _Optional[_Mapping[int, int]] = ...) -> None: ...

class PauseJudgeRequest(_message.Message):
    __slots__ = ("model", "paused")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    model: str
    paused: bool
    def __init__(self, model: _Optional[str] = ..., paused: bool = ...) -> None: ...

class GetRoutingRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class GetRoutingResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[RoutingState]
    def __init__(self, models: _Optional[_Iterable[_Union[RoutingState, _Mapping]]] = ...) -> None: ...

class VersionRouting(_message.Message):
    __slots__ = ("version", "ready", "configured_weight", "effective_weight", "role", "rolled_back", "rollback_reason", "rolled_back_at", "rollback_evidence", "verdict", "failed_checks", "verdict_evidence", "checked_at")
    class RollbackEvidenceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class VerdictEvidenceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    CONFIGURED_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ROLLED_BACK_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_REASON_FIELD_NUMBER: _ClassVar[int]
    ROLLED_BACK_AT_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    FAILED_CHECKS_FIELD_NUMBER: _ClassVar[int]
    VERDICT_EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    version: int
    ready: bool
    configured_weight: int
    effective_weight: int
    role: str
    rolled_back: bool
    rollback_reason: str
    rolled_back_at: str
    rollback_evidence: _containers.ScalarMap[str, float]
    verdict: str
    failed_checks: int
    verdict_evidence: _containers.ScalarMap[str, float]
    checked_at: str
    def __init__(self, version: _Optional[int] = ..., ready: bool = ..., configured_weight: _Optional[int] = ..., effective_weight: _Optional[int] = ..., role: _Optional[str] = ..., rolled_back: bool = ..., rollback_reason: _Optional[str] = ..., rolled_back_at: _Optional[str] = ..., rollback_evidence: _Optional[_Mapping[str, float]] = ..., verdict: _Optional[str] = ..., failed_checks: _Optional[int] = ..., verdict_evidence: _Optional[_Mapping[str, float]] = ..., checked_at: _Optional[str] = ...) -> None: ...

class RoutingState(_message.Message):
    __slots__ = ("model", "sticky_key", "shadow_version", "shadow_fraction", "judge_enabled", "judge_paused", "overridden", "versions")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STICKY_KEY_FIELD_NUMBER: _ClassVar[int]
    SHADOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FRACTION_FIELD_NUMBER: _ClassVar[int]
    JUDGE_ENABLED_FIELD_NUMBER: _ClassVar[int]
    JUDGE_PAUSED_FIELD_NUMBER: _ClassVar[int]
    OVERRIDDEN_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    model: str
    sticky_key: str
    shadow_version: int
    shadow_fraction: float
    judge_enabled: bool
    judge_paused: bool
    overridden: bool
    versions: _containers.RepeatedCompositeFieldContainer[VersionRouting]
    def __init__(self, model: _Optional[str] = ..., sticky_key: _Optional[str] = ..., shadow_version: _Optional[int] = ..., shadow_fraction: _Optional[float] = ..., judge_enabled: bool = ..., judge_paused: bool = ..., overridden: bool = ..., versions: _Optional[_Iterable[_Union[VersionRouting, _Mapping]]] = ...) -> None: ...

class DriftScore(_message.Message):
    __slots__ = ("version", "output", "method", "value", "window_samples")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    version: int
    output: str
    method: str
    value: float
    window_samples: int
    def __init__(self, version: _Optional[int] = ..., output: _Optional[str] = ..., method: _Optional[str] = ..., value: _Optional[float] = ..., window_samples: _Optional[int] = ...) -> None: ...

class VersionDriftSetup(_message.Message):
    __slots__ = ("version", "has_reference", "min_samples")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HAS_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    MIN_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    version: int
    has_reference: bool
    min_samples: int
    def __init__(self, version: _Optional[int] = ..., has_reference: bool = ..., min_samples: _Optional[int] = ...) -> None: ...

class DriftReport(_message.Message):
    __slots__ = ("model", "scores", "versions")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    model: str
    scores: _containers.RepeatedCompositeFieldContainer[DriftScore]
    versions: _containers.RepeatedCompositeFieldContainer[VersionDriftSetup]
    def __init__(self, model: _Optional[str] = ..., scores: _Optional[_Iterable[_Union[DriftScore, _Mapping]]] = ..., versions: _Optional[_Iterable[_Union[VersionDriftSetup, _Mapping]]] = ...) -> None: ...
