"""The servicer context of a call the native server delegates to Python: the grpc.aio.ServicerContext interface,
so that one set of handlers (servicers, the admin guard, health, reflection) serves both frontends."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, NoReturn

import grpc
from grpc.aio import AbortError, Metadata

from server.types import NOT_DRAWN, Drawn

#: Auth-context properties that name the TLS peer, most specific first (grpc's own order of preference).
_IDENTITY_PROPERTIES = ("x509_subject_alternative_name", "x509_common_name")

MetadataPairs = Metadata | Sequence[tuple[str, str | bytes]]


def invocation_metadata(pairs: Iterable[tuple[str, bytes]]) -> Metadata:
    """grpc.aio's shape: text values as str, binary ("-bin") values as bytes."""
    return Metadata(*((key, value if key.endswith("-bin") else value.decode("latin-1")) for key, value in pairs))


def auth_properties(pairs: Iterable[tuple[str, bytes]]) -> dict[str, list[bytes]]:
    properties: dict[str, list[bytes]] = {}
    for name, value in pairs:
        properties.setdefault(name, []).append(value)
    return properties


class NativeContext(grpc.aio.ServicerContext[Any, Any]):
    """One delegated call's context. `write` sends a message of a server-streaming call (and waits while too many
    are still going out, like grpc.aio's write); `abort` raises
    grpc.aio.AbortError with the status recorded, which the dispatcher sends."""

    def __init__(
        self,
        metadata: Metadata,
        deadline: float | None,
        peer: str,
        auth: dict[str, list[bytes]],
        send: Callable[[bytes | str], Awaitable[None]],
        serialize: Callable[[Any], bytes] | None,
        drawn: Drawn = NOT_DRAWN,
    ) -> None:
        """`drawn`: what the native path drew this ModelInfer for (the servicer reads it)."""
        self._metadata = metadata
        self._deadline = deadline  # time.monotonic() clock
        self._peer = peer
        self._auth = auth
        self._send = send
        self._serialize = serialize
        self.drawn = drawn
        self.status_code = grpc.StatusCode.OK
        self.status_details = ""
        self.trailing: tuple[tuple[str, str | bytes], ...] = ()
        self.is_cancelled = False
        self.is_done = False
        self._done_callbacks: list[Callable[[Any], None]] = []

    # ------------------------------------------------------------ the call's facts

    def invocation_metadata(self) -> Metadata | None:
        return self._metadata

    def peer(self) -> str:
        return self._peer

    def time_remaining(self) -> float | None:  # type: ignore[override]  # grpc.aio's is None without a deadline too
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def auth_context(self) -> dict[str, Iterable[bytes]]:
        return dict(self._auth)

    def peer_identity_key(self) -> str | None:
        return next((name for name in _IDENTITY_PROPERTIES if name in self._auth), None)

    def peer_identities(self) -> Iterable[bytes] | None:
        key = self.peer_identity_key()
        return None if key is None else list(self._auth[key])

    def cancelled(self) -> bool:
        return self.is_cancelled

    def done(self) -> bool:
        return self.is_done

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._done_callbacks.append(callback)

    def mark_done(self, cancelled: bool) -> None:
        """The dispatcher's: gRPC is done with the call."""
        self.is_done, self.is_cancelled = True, cancelled
        for callback in self._done_callbacks:
            callback(self)

    # ------------------------------------------------------------ the answer

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: MetadataPairs = ()) -> NoReturn:
        if code is grpc.StatusCode.OK:
            raise ValueError("abort() needs a status code other than OK")
        self.status_code, self.status_details = code, details
        if trailing_metadata:
            self.trailing = tuple(trailing_metadata)
        raise AbortError()

    async def abort_with_status(self, status: grpc.Status) -> NoReturn:
        await self.abort(status.code, status.details, status.trailing_metadata)

    def set_code(self, code: grpc.StatusCode) -> None:
        self.status_code = code

    def set_details(self, details: str) -> None:
        self.status_details = details

    def code(self) -> grpc.StatusCode:
        return self.status_code

    def details(self) -> str:
        return self.status_details

    def set_trailing_metadata(self, trailing_metadata: MetadataPairs) -> None:
        self.trailing = tuple(trailing_metadata)

    def trailing_metadata(self) -> Metadata:
        return Metadata(*self.trailing)

    async def write(self, message: Any) -> None:
        await self._send(message if self._serialize is None else self._serialize(message))

    async def send_initial_metadata(self, initial_metadata: MetadataPairs) -> None:
        """Initial metadata goes out with the first message or the status; none of our handlers sends any."""

    async def read(self) -> Any:
        raise RuntimeError("read() is not supported on the native frontend: handlers take the request iterator")

    def set_compression(self, compression: grpc.Compression) -> None:
        """Responses are not compressed (neither are the Python frontend's)."""

    def disable_next_message_compression(self) -> None:
        """Nothing to disable: responses are not compressed."""
