"""The one exception type the clients raise for a failed RPC."""

from __future__ import annotations

import grpc


class InferenceServerError(Exception):
    """An RPC failed: the server answered with a non-OK status, or could not be reached.

    Attributes:
        code: the gRPC status code (``grpc.StatusCode``).
        details: the status message the server (or the gRPC runtime) gave.
        attempts: how many times the call was tried before giving up (1 unless retried).
    """

    def __init__(self, code: grpc.StatusCode, details: str, *, attempts: int = 1) -> None:
        self.code = code
        self.details = details
        self.attempts = attempts
        suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
        super().__init__(f"{code.name}: {details}{suffix}")

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError, *, attempts: int = 1) -> InferenceServerError:
        """Wrap a ``grpc.RpcError`` (sync) or ``grpc.aio.AioRpcError`` (asyncio)."""
        return cls(status_code(error), _details(error), attempts=attempts)


def status_code(error: grpc.RpcError) -> grpc.StatusCode:
    """The status code of a failed call; UNKNOWN for an RpcError that carries none."""
    code = getattr(error, "code", None)
    return code() if callable(code) else grpc.StatusCode.UNKNOWN


def _details(error: grpc.RpcError) -> str:
    details = getattr(error, "details", None)
    text = details() if callable(details) else None
    return str(text) if text else str(error)
