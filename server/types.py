"""Plain, protocol-independent objects that flow through the core."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from oip.codec import DATATYPE_TO_DTYPE

if TYPE_CHECKING:
    from server.tracing.requests import RequestSpan

ParameterValue = bool | int | float | str


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A model input or output as served: protocol datatype and shape, -1 = variable."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype[Any]:
        """The numpy dtype a request tensor of this spec decodes to."""
        return DATATYPE_TO_DTYPE[self.datatype]


@dataclass(frozen=True, slots=True)
class ModelSignature:
    """What a model version accepts and returns.

    `max_batch_size > 0` means the first dimension of every input is the batch dimension, which is
    included in `shape` as -1; the outputs carry it too unless `unmergeable` says otherwise.
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int
    unmergeable: str = ""
    """Why requests must never share an execution although the model batches (an output whose first
    dimension is not provably the inputs' batch dimension); empty when merging is safe."""
    max_batch_size_configured: bool = True
    """False when `max_batch_size` is the default for a model without one in its config: a request with
    more rows is then served alone (never merged) instead of refused, since its client never agreed to a limit."""
    input_names: frozenset[str] = field(init=False)
    """Derived from `inputs`: the names a request must carry."""
    output_names: tuple[str, ...] = field(init=False)
    """Derived from `outputs`: what a request without requested outputs gets, in model order."""

    def __post_init__(self) -> None:
        # Computed once per loaded version, not on every request.
        object.__setattr__(self, "input_names", frozenset(spec.name for spec in self.inputs))
        object.__setattr__(self, "output_names", tuple(spec.name for spec in self.outputs))


@dataclass(frozen=True, slots=True)
class Drawn:
    """The shares the native frontend drew for a request before handing it to the Python path
    (native/src/fast_path.h's Drawn, in the same order): whether the access log writes it, tracing samples it, the
    model's shadow copies it. When `decided`, the Python path follows these decisions instead of drawing again,
    which would skew each share; else (every request of the Python frontend, and those the native path left
    before drawing) it draws as always."""

    decided: bool = False
    access: bool = False
    trace: bool = False
    shadow: bool = False

    def decision(self, share: bool) -> bool | None:
        """`share` (one of this record's flags) when the native path decided it, else None: draw."""
        return share if self.decided else None


NOT_DRAWN = Drawn()


class DrawnMessage(bytes):
    """A ModelStreamInfer message the native frontend drew for the Python path: its bytes, and in `drawn` the
    shares it drew (the native path decides them per message on a stream, per call otherwise). The grpc.aio
    frontend's messages are plain bytes."""

    drawn: Drawn


def message_drawn(raw: bytes) -> Drawn | None:
    """What the native frontend drew a streamed message for, or None when it did not draw."""
    return raw.drawn if isinstance(raw, DrawnMessage) else None


@dataclass(slots=True)
class InferRequest:
    """One inference request, decoded from the wire."""

    model_name: str
    model_version: str
    inputs: dict[str, npt.NDArray[Any]]
    requested_outputs: tuple[str, ...] = ()
    request_id: str = ""
    parameters: Mapping[str, ParameterValue] = field(default_factory=dict)
    deadline: float | None = None
    """time.monotonic() by which the answer is due (from the transport), or None."""
    metadata: Callable[[], Any] | None = None
    """The transport's request metadata as (key, value) pairs, fetched only when routing needs it."""
    trace: RequestSpan | None = None
    """The request's span when tracing sampled it (the transport starts and ends it)."""
    drawn: Drawn = NOT_DRAWN
    """The shares the native frontend already drew for this request (see Drawn)."""


@dataclass(slots=True)
class InferResponse:
    """The outputs of one request, in the order they should be sent."""

    model_name: str
    model_version: str
    outputs: dict[str, npt.NDArray[Any]]
    request_id: str = ""


def batch_size_of(inputs: Mapping[str, npt.NDArray[Any]]) -> int:
    """Leading dimension of the first input (1 for scalars or no inputs)."""
    for array in inputs.values():
        return int(array.shape[0]) if array.ndim else 1
    return 1
