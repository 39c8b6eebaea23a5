"""Finds the oip_native extension: installed beside the server, or built into a source checkout by `make native`."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

#: Where `make native` builds the extension in a source checkout; OIP_NATIVE_BUILD points elsewhere (the
#: AddressSanitizer build of `make native-asan`).
BUILD_DIRECTORY = Path(os.environ.get("OIP_NATIVE_BUILD") or Path(__file__).resolve().parents[2] / "build" / "native")
MODULE = "oip_native"


class ExtensionUnavailableError(OSError):
    """The native extension cannot be imported here; the message says why and how to build it. An OSError, like
    a port that cannot be bound: the server says so and exits."""


def load_extension(build_directory: Path = BUILD_DIRECTORY, module: str = MODULE) -> ModuleType:
    """The imported extension; raises ExtensionUnavailableError when it is neither installed nor built."""
    if module in sys.modules:
        return sys.modules[module]
    try:
        return importlib.import_module(module)
    except ImportError:
        pass
    if not any(build_directory.glob(f"{module}*.so")):
        raise ExtensionUnavailableError(
            f"the native extension ({module}) is not installed and not built in {build_directory}; build it with "
            "`make native` (needs Debian's libgrpc++-dev, protobuf-compiler-grpc, libprotobuf-dev), or use "
            "--frontend python"
        )
    sys.path.insert(0, str(build_directory))
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ExtensionUnavailableError(f"the native extension in {build_directory} does not load: {error}") from None
    finally:
        sys.path.remove(str(build_directory))


def resolve_frontend(choice: str) -> str:
    """The frontend to run for the --frontend setting: "auto" is native where the extension loads, else python."""
    if choice != "auto":
        return choice
    try:
        load_extension()
    except ExtensionUnavailableError:
        return "python"
    return "native"
