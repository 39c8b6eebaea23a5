"""Finds the oip_native extension: installed beside the server by `pip install .`, or built into a source checkout
by `make native`."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

#: A build to load before an installed extension: `make native-asan` points it at the AddressSanitizer build.
OVERRIDE = os.environ.get("OIP_NATIVE_BUILD") or None
#: Where `make native` builds the extension in a source checkout, or OIP_NATIVE_BUILD.
BUILD_DIRECTORY = Path(OVERRIDE or Path(__file__).resolve().parents[2] / "build" / "native")
MODULE = "oip_native"


class ExtensionUnavailableError(OSError):
    """The native extension cannot be imported here; the message says why and how to build it. An OSError, like
    a port that cannot be bound: the server says so and exits."""


def load_extension(build_directory: Path = BUILD_DIRECTORY, module: str = MODULE) -> ModuleType:
    """The imported extension: the build OIP_NATIVE_BUILD names, else the one installed (by `pip install .`), else
    the one in build_directory; raises ExtensionUnavailableError when none of them loads."""
    if module in sys.modules:
        return sys.modules[module]
    installed_error: ImportError | None = None
    if OVERRIDE is None:
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                installed_error = error
        except ImportError as error:
            installed_error = error
    if not any(build_directory.glob(f"{module}*.so")):
        if installed_error is not None:
            raise ExtensionUnavailableError(
                f"the installed native extension ({module}) does not load: {installed_error}"
            ) from None
        not_installed = "" if OVERRIDE is not None else "not installed and "
        raise ExtensionUnavailableError(
            f"the native extension ({module}) is {not_installed}not built in {build_directory}; `pip install .` "
            "builds it where Debian's libgrpc++-dev, protobuf-compiler-grpc and libprotobuf-dev are installed, and "
            "so does `make native` (into build/native); or use --frontend python"
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
