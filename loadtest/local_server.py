"""Helpers for tools that start `python -m server` themselves on loopback (memory, instruction counts)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.request

from loadtest.errors import LoadTestError


def free_port() -> int:
    """A free loopback port number (released before use; fine for a local measurement)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports: all held open until all are chosen, so no two are the same."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_until_ready(http_port: int, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Poll the server's /v2/health/ready until it answers 200; fail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LoadTestError(f"the server exited with {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise LoadTestError(f"the server did not become ready within {timeout_s:.0f} s")


def stop(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM (the server drains), then SIGKILL if it has not exited within `timeout_s`."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
