"""Turns our exceptions into gRPC status codes: the one place where that happens."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeAlias, TypeVar

import grpc

from server.errors import ServerError, status_name

log = logging.getLogger(__name__)

#: Longest status message sent, in UTF-8 bytes. Status details travel as trailing metadata, percent-encoded
#: (up to 3x), and peers refuse metadata over 8 kB by default: a longer message would turn the answer into
#: RESOURCE_EXHAUSTED "metadata size exceeds limit". Messages embed client text through `server.names.shown`;
#: this cap is the backstop for long server-side parts (lists of models, inputs).
MAX_MESSAGE_BYTES = 2048

R = TypeVar("R")
S = TypeVar("S")
Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
Handler: TypeAlias = Callable[[S, Any, Context], Coroutine[Any, Any, R]]


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC status code and message for an exception."""
    code: grpc.StatusCode = grpc.StatusCode[status_name(error)]
    if isinstance(error, ServerError):
        return code, capped(str(error))
    return code, capped(f"internal error: {type(error).__name__}: {error}")


def capped(message: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """`message` cut to at most `limit` UTF-8 bytes (plus a note of its full size)."""
    encoded = message.encode("utf-8", "surrogatepass")
    if len(encoded) <= limit:
        return message
    return f"{encoded[:limit].decode('utf-8', 'ignore')}… ({len(encoded)} bytes)"


def grpc_errors(method: Handler[S, R]) -> Handler[S, R]:
    """Wrap a unary servicer method so that our errors abort the RPC with the mapped status."""

    async def wrapper(self: S, request: Any, context: Context) -> R:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except ServerError as error:
            code, message = status_for(error)
            await context.abort(code, message)
        except Exception as error:
            log.exception("unhandled error in %s", method.__name__)
            code, message = status_for(error)
            await context.abort(code, message)
        raise AssertionError("context.abort always raises")  # pragma: no cover

    return functools.update_wrapper(wrapper, method)
