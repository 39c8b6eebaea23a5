"""The Dockerfile, Makefile, CLI, README and CI script describe the same install and the same server."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from server.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
MAKEFILE = (ROOT / "Makefile").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def make_variable(name: str) -> str:
    match = re.search(rf"^{name} := (.+)$", MAKEFILE, re.MULTILINE)
    assert match, f"Makefile has no {name}"
    return match.group(1).strip()


def dockerfile_json(instruction: str) -> list[str]:
    match = re.search(rf"^{instruction} (\[.*\])$", DOCKERFILE, re.MULTILINE)
    assert match, f"Dockerfile has no exec-form {instruction}"
    return list(json.loads(match.group(1)))


def test_docker_installs_exactly_like_make_run() -> None:
    assert f"RUN python -m {make_variable('INSTALL_RUNTIME')}" in DOCKERFILE


def test_docker_copies_every_package_the_wheel_contains() -> None:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["scikit-build"]["wheel"]["packages"]
    assert packages and all((ROOT / package).is_dir() for package in packages), packages
    for package in packages:
        assert f"COPY {package} ./{package}" in DOCKERFILE, package
    # and what `pip install .` builds the native extension from
    for source in ("CMakeLists.txt ./", "native ./native", "proto ./proto"):
        assert f"COPY {source}" in DOCKERFILE, source


def test_docker_runs_the_server_like_make_run() -> None:
    run_line = next(line for line in MAKEFILE.splitlines() if "-m server" in line)
    make_flags = [token for token in shlex.split(run_line) if token.startswith("--")]
    assert dockerfile_json("ENTRYPOINT") == ["python", "-m", "server"]
    command = dockerfile_json("CMD")
    docker_flags = [token for token in command if token.startswith("--")]
    assert docker_flags == make_flags
    known = {option for action in build_parser()._actions for option in action.option_strings}
    assert set(make_flags) <= known
    values = dict(zip(command[::2], command[1::2], strict=True))
    assert values["--grpc-port"] == "8001" and values["--metrics-port"] == "8002"
    assert values["--model-repository"] == "/models"


def test_docker_image_is_production_shaped() -> None:
    assert re.search(r"^FROM python:3\.11-slim", DOCKERFILE, re.MULTILINE)
    user = re.search(r"^USER (\S+)$", DOCKERFILE, re.MULTILINE)
    assert user and user.group(1) not in {"root", "0"}
    assert re.search(r"^EXPOSE 8001 8002$", DOCKERFILE, re.MULTILINE)
    assert 'VOLUME ["/models"]' in DOCKERFILE
    # routing state persists outside the (often read-only) models volume
    assert "ENV SERVER_STATE_DIR=/var/lib/oip-server" in DOCKERFILE and 'VOLUME ["/var/lib/oip-server"]' in DOCKERFILE
    assert "HEALTHCHECK" in DOCKERFILE and "/v2/health/ready" in DOCKERFILE


def test_readme_and_ci_use_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^run: ", MAKEFILE, re.MULTILINE) and re.search(r"^test: ", MAKEFILE, re.MULTILINE)


@pytest.mark.slow
def test_wheel_contains_packages_stubs_and_type_markers(tmp_path: Path) -> None:
    pytest.importorskip("scikit_build_core")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "OIP_NATIVE": "OFF"},  # the Python packages alone: `make native` builds the extension
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("*-py3-none-any.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "server/__main__.py",
        "server/py.typed",
        "clients/py.typed",
        "oip/py.typed",
        "oip/codec.py",
        "oip/v1/grpc_service_pb2.py",
        "oip/v1/grpc_service_pb2.pyi",
        "oip/v1/grpc_service_pb2_grpc.py",
    ):
        assert required in names, required
    assert not any(name.startswith(("tests/", "models/")) for name in names)


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_constraints_pin_every_dependency_and_every_install_uses_them() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_requirement_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    wanted = {name for name in wanted if not name.startswith("uvloop") or sys.platform != "win32"}
    lines = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line and not line.startswith("#")]
    pinned = {_requirement_name(line): line for line in lines}
    assert all("==" in line for line in lines), [line for line in lines if "==" not in line]
    assert wanted <= pinned.keys(), sorted(wanted - pinned.keys())
    assert "-c constraints.txt" in make_variable("INSTALL_RUNTIME") and "-c constraints.txt" in make_variable(
        "INSTALL_DEV"
    )
    assert re.search(r"^COPY .*constraints\.txt", DOCKERFILE, re.MULTILINE)


def test_the_docker_context_leaves_out_local_results() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {"loadtest/results", ".venv", "tests", ".git"} <= set(ignored)
