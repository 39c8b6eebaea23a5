"""Running a `make test` setup script (h2load, promtool) against a PATH of stubs, so nothing is installed for real."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

BASH = shutil.which("bash")
#: Real helpers the scripts (and the apt-get stubs) call; everything else on PATH is a stub.
REAL_TOOLS = ("mktemp", "rm", "timeout", "cp")


def stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!{BASH}\n{body}\n")
    path.chmod(0o755)


def stub_path(tmp_path: Path, uid: int) -> Path:
    """tmp_path/bin with the real helpers and an `id` that answers `uid`; add the script's own stubs to it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in REAL_TOOLS:
        if (real := shutil.which(tool)) is not None:
            (bin_dir / tool).symlink_to(real)
    stub(bin_dir, "id", f"echo {uid}")
    return bin_dir


def recording_apt_get(bin_dir: Path, tmp_path: Path, on_install: str = "", fail_update: str = "") -> None:
    """An apt-get stub that appends its arguments to tmp_path/apt-calls; `on_install` runs for `install`,
    `fail_update` (if given) replaces the whole behaviour after recording."""
    calls = tmp_path / "apt-calls"
    behaviour = fail_update or f'if [ "$1" = install ]; then {on_install}; fi'
    stub(bin_dir, "apt-get", f'echo "$@" >> {calls}\n{behaviour}')


def run_script(script: Path, bin_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    assert BASH is not None
    environment = {"PATH": str(bin_dir), "TMPDIR": str(bin_dir.parent), **env}
    return subprocess.run([BASH, str(script)], env=environment, capture_output=True, text=True, timeout=30, check=False)


def apt_calls(tmp_path: Path) -> list[str]:
    calls = tmp_path / "apt-calls"
    return calls.read_text().splitlines() if calls.exists() else []
