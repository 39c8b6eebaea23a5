"""A minimal HTTP/1.1 server on asyncio for /metrics and /v2/health/{live,ready}.

GET only, one response per connection: enough for Prometheus scrapers and
HTTP probes, with no web framework on the request path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable", 400: "Bad Request"}
_MAX_HEADER_BYTES = 16 * 1024
_READ_TIMEOUT_S = 10.0


class SideHttpServer:
    """Serves the registry at /metrics and health at /v2/health/live and /v2/health/ready."""

    def __init__(self, registry: CollectorRegistry, is_ready: Callable[[], bool]) -> None:
        self._registry = registry
        self._is_ready = is_ready
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._handle, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _route(self, method: str, path: str, accept: str = "") -> tuple[int, str, bytes]:
        if method not in {"GET", "HEAD"}:
            return 405, "text/plain", b"only GET is supported\n"
        path = path.split("?", 1)[0]
        if path == "/metrics":
            # Prometheus text by default; OpenMetrics (which carries exemplars) when the scraper asks for it.
            encode, content_type = choose_encoder(accept)
            return 200, content_type, encode(self._registry)
        if path == "/v2/health/live":
            return 200, "text/plain", b"live\n"
        if path == "/v2/health/ready":
            ready = self._is_ready()
            return (200, "text/plain", b"ready\n") if ready else (503, "text/plain", b"not ready\n")
        return 404, "text/plain", b"not found; try /metrics, /v2/health/live or /v2/health/ready\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_S)
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split()
            if len(parts) != 3 or len(head) > _MAX_HEADER_BYTES:
                status, content_type, body = 400, "text/plain", b"bad request\n"
                method = "GET"
            else:
                method, path, _ = parts
                status, content_type, body = self._route(method, path, _header(lines[1:], "accept"))
            header = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(header.encode("latin-1") + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a client that went away or never sent a request gets nothing
        finally:
            writer.close()


def _header(lines: list[str], name: str) -> str:
    """The value of header `name` (lower-case) among the request's header lines, "" when absent."""
    for line in lines:
        key, colon, value = line.partition(":")
        if colon and key.strip().lower() == name:
            return value.strip()
    return ""
