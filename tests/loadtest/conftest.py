"""Fixtures shared by the load-test tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.engines.h2load_engine import h2load_available
from tests.support.onnx_models import identity, write_model
from tests.support.servers import ThreadedServer

#: For tests that run h2load; the reason says how to get it (`make test` tries, as root, and says so).
needs_h2load = pytest.mark.skipif(
    not h2load_available(),
    reason="h2load is not installed: run `make loadtest-setup` as root, or apt-get install nghttp2-client",
)


@pytest.fixture(scope="module")
def identity_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    """Our server on loopback, serving one FP32 identity model ("identity", input INPUT0 of shape [-1, 3])."""
    repository = tmp_path_factory.mktemp("repository")
    write_model(repository, "identity", identity("FP32"))
    with ThreadedServer(Path(repository)) as running:
        yield running
