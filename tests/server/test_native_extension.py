"""Choosing the frontend: a clear error when the native one cannot load, and only the two names accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from server.native.extension import ExtensionUnavailableError, load_extension
from server.settings import load_settings


def test_a_missing_extension_says_how_to_build_it_or_fall_back(tmp_path: Path) -> None:
    with pytest.raises(ExtensionUnavailableError) as missing:
        load_extension(tmp_path, module="oip_native_not_here")
    message = str(missing.value)
    assert str(tmp_path) in message and "make native" in message and "--frontend python" in message
    assert isinstance(missing.value, OSError)  # the server reports it like a port it cannot bind, and exits


def test_a_broken_build_is_named(tmp_path: Path) -> None:
    (tmp_path / "oip_native_broken.cpython-311-x86_64-linux-gnu.so").write_bytes(b"not a shared object")
    with pytest.raises(ExtensionUnavailableError, match="does not load"):
        load_extension(tmp_path, module="oip_native_broken")


def test_the_frontend_is_python_by_default_and_only_python_or_native() -> None:
    assert load_settings({}).grpc.frontend == "python"
    assert load_settings({"grpc": {"frontend": "native"}}).grpc.frontend == "native"
    with pytest.raises(ValidationError, match="'python' or 'native'"):
        load_settings({"grpc": {"frontend": "rust"}})
