"""Choosing the frontend: a clear error when the native one cannot load, and only the two names accepted."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from server.native import extension
from server.native.extension import ExtensionUnavailableError, load_extension, resolve_frontend
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


def test_an_installed_extension_comes_before_the_build_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site, build = tmp_path / "site", tmp_path / "build"
    site.mkdir()
    build.mkdir()
    (site / "oip_native_installed.py").write_text("WHERE = 'installed'\n")
    (build / "oip_native_installed.cpython-311-x86_64-linux-gnu.so").write_bytes(b"not a shared object")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(extension, "OVERRIDE", None)
    try:
        assert load_extension(build, module="oip_native_installed").WHERE == "installed"
    finally:
        sys.modules.pop("oip_native_installed", None)


def test_oip_native_build_comes_before_the_installed_extension(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site, build = tmp_path / "site", tmp_path / "asan"
    site.mkdir()
    build.mkdir()
    (site / "oip_native_overridden.py").write_text("WHERE = 'installed'\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(extension, "OVERRIDE", str(build))
    with pytest.raises(ExtensionUnavailableError, match="is not built in") as missing:
        load_extension(build, module="oip_native_overridden")
    assert "installed" not in str(missing.value).split(";")[0]
    (build / "oip_native_overridden.cpython-311-x86_64-linux-gnu.so").write_bytes(b"not a shared object")
    with pytest.raises(ExtensionUnavailableError, match="does not load"):
        load_extension(build, module="oip_native_overridden")
    assert "oip_native_overridden" not in sys.modules


def test_an_installed_extension_that_does_not_load_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "oip_native_unlinked.py").write_text(
        "raise ImportError('libgrpc++.so.1.51: cannot open shared object file')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(extension, "OVERRIDE", None)
    with pytest.raises(ExtensionUnavailableError, match=r"installed native extension .* libgrpc\+\+\.so\.1\.51"):
        load_extension(tmp_path / "build", module="oip_native_unlinked")


def test_the_frontend_is_auto_by_default_and_only_auto_python_or_native(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVER_GRPC_FRONTEND", raising=False)
    assert load_settings({}).grpc.frontend == "auto"
    assert load_settings({"grpc": {"frontend": "native"}}).grpc.frontend == "native"
    with pytest.raises(ValidationError, match="'auto', 'python' or 'native'"):
        load_settings({"grpc": {"frontend": "rust"}})


def test_auto_is_native_where_the_extension_loads_else_python(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_frontend("python") == "python" and resolve_frontend("native") == "native"

    def unavailable() -> None:
        raise ExtensionUnavailableError("not built here")

    monkeypatch.setattr(extension, "load_extension", unavailable)
    assert resolve_frontend("auto") == "python"
    monkeypatch.setattr(extension, "load_extension", lambda: None)
    assert resolve_frontend("auto") == "native"
