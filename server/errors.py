"""Our own exception types. The gRPC edge maps each one to a status code in one place."""

from __future__ import annotations


class ServerError(Exception):
    """Base class for errors that are the caller's or a model's business, not a crash."""


class ModelNotFoundError(ServerError):
    """The model, or the requested version of it, does not exist in the repository."""


class ModelNotReadyError(ServerError):
    """The model exists but is not ready to serve (loading, unloading or failed)."""


class InvalidInputError(ServerError):
    """The request does not match the model's signature or the protocol."""


class MalformedRequestError(InvalidInputError):
    """The request's bytes do not decode as the RPC's protobuf message (INVALID_ARGUMENT, like any bad input)."""


class InferenceFailedError(ServerError):
    """The runtime failed while executing a model."""


class ResourceExhaustedError(ServerError):
    """A bounded queue or limit rejected the request."""


class DeadlineExceededError(ServerError):
    """The request's deadline passed before it could be served."""


class ModelLoadError(ServerError):
    """Loading a model or one of its versions failed; the reason is in the message."""


class ConflictError(ServerError):
    """A change was made against state that has changed since (e.g. a routing change racing a reload)."""


class UnsupportedError(ServerError):
    """A protocol feature that this server deliberately does not implement."""


class ShuttingDownError(ServerError):
    """The server is draining for shutdown: it finishes what it accepted and takes nothing new (retry elsewhere)."""


#: The one table from our errors to canonical status code names (gRPC's, also used for the
#: `code` metric label). The gRPC edge turns the name into a grpc.StatusCode.
STATUS_BY_ERROR: dict[type[ServerError], str] = {
    ModelNotFoundError: "NOT_FOUND",
    ModelNotReadyError: "UNAVAILABLE",
    ShuttingDownError: "UNAVAILABLE",
    InvalidInputError: "INVALID_ARGUMENT",
    InferenceFailedError: "INTERNAL",
    ResourceExhaustedError: "RESOURCE_EXHAUSTED",
    DeadlineExceededError: "DEADLINE_EXCEEDED",
    ModelLoadError: "INVALID_ARGUMENT",
    UnsupportedError: "UNIMPLEMENTED",
    ConflictError: "ABORTED",
}


def status_name(error: BaseException) -> str:
    """Canonical status name for an error; anything unexpected is INTERNAL."""
    for cls, name in STATUS_BY_ERROR.items():
        if isinstance(error, cls):
            return name
    return "INTERNAL"
