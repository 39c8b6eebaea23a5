"""Reserve the gRPC port that the workers share."""

from __future__ import annotations

import socket
from typing import Any


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound (never listening) to host:port with SO_REUSEPORT; port 0 picks a free one.

    Workers bind the same address with SO_REUSEPORT and the kernel spreads new connections over
    their listening sockets; this one never listens, so it gets none. Held for the supervisor's
    lifetime, it keeps the port number ours across worker restarts.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        raise OSError("--workers above 1 needs SO_REUSEPORT, which this platform lacks")
    address = f"{host}:{port}"
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(
            host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        if port:
            # SO_REUSEPORT would quietly share a port some other server of ours holds with it;
            # a plain bind first makes any holder an error, as without --workers.
            _bind(family, sockaddr, socket.SO_REUSEADDR).close()
        return _bind(family, sockaddr, socket.SO_REUSEPORT)
    except OSError as error:
        raise OSError(f"could not bind gRPC to {address}: {error}") from None


def _bind(family: socket.AddressFamily, sockaddr: Any, option: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, option, 1)
        sock.bind(sockaddr)
    except OSError:
        sock.close()
        raise
    return sock
