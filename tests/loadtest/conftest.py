"""Fixtures shared by the load-test tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.onnx_models import identity, write_model
from tests.support.servers import ThreadedServer


@pytest.fixture(scope="module")
def identity_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    """Our server on loopback, serving one FP32 identity model ("identity", input INPUT0 of shape [-1, 3])."""
    repository = tmp_path_factory.mktemp("repository")
    write_model(repository, "identity", identity("FP32"))
    with ThreadedServer(Path(repository)) as running:
        yield running
