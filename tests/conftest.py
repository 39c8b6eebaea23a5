"""Fixtures shared across the suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import ThreadedServer

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_MODELS = REPO_ROOT / "models"


@pytest.fixture(scope="session")
def example_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    """One server for the whole session on the bundled example models (read-only use: routing state goes elsewhere)."""
    with ThreadedServer(EXAMPLE_MODELS, state_dir=tmp_path_factory.mktemp("routing-state")) as server:
        yield server


@pytest.fixture(scope="session")
def example_server_address(example_server: ThreadedServer) -> str:
    """ "127.0.0.1:PORT" of the example server."""
    return example_server.address
