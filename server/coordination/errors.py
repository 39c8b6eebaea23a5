"""Our exceptions as (code, message) across the pipe, and back, so a worker answers as if it had failed itself."""

from __future__ import annotations

from server.errors import STATUS_BY_ERROR, ServerError, status_name

#: gRPC code name -> the first of our error types that maps to it.
_ERROR_BY_STATUS: dict[str, type[ServerError]] = {}
for _error, _code in STATUS_BY_ERROR.items():
    _ERROR_BY_STATUS.setdefault(_code, _error)


def error_fields(error: BaseException) -> dict[str, str]:
    """The reply fields that describe a failure."""
    message = str(error) if isinstance(error, ServerError) else f"internal error: {type(error).__name__}: {error}"
    return {"error": message, "code": status_name(error)}


def raise_reply_error(reply: dict[str, object]) -> None:
    """Raise the error a reply carries, if any, as one of our own exception types."""
    message = reply.get("error")
    if message:
        raise _ERROR_BY_STATUS.get(str(reply.get("code", "")), ServerError)(str(message))
