"""The native extension, where `make native` built it into build/native (else its tests skip)."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import pytest

from server.native.extension import BUILD_DIRECTORY as BUILD


@pytest.fixture(scope="module")
def native() -> ModuleType:
    if not any(BUILD.glob("oip_native*.so")):
        pytest.skip("the native extension is not built here (`make native` needs Debian's gRPC C++ packages)")
    sys.path.insert(0, str(BUILD))
    try:
        return importlib.import_module("oip_native")
    finally:
        sys.path.remove(str(BUILD))
