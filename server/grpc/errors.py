"""Turns our exceptions into gRPC status codes: the one place where that happens."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeAlias, TypeVar

import grpc

from server.errors import ServerError, status_name

log = logging.getLogger(__name__)

R = TypeVar("R")
S = TypeVar("S")
Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
Handler: TypeAlias = Callable[[S, Any, Context], Coroutine[Any, Any, R]]


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC status code and message for an exception."""
    code: grpc.StatusCode = grpc.StatusCode[status_name(error)]
    if isinstance(error, ServerError):
        return code, str(error)
    return code, f"internal error: {type(error).__name__}: {error}"


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
