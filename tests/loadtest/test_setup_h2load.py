"""loadtest/setup_h2load.sh: says what it installs before it does, and skips in one line wherever it cannot.

Each case runs the script with a PATH of stubs only (`id`, `apt-get`, `h2load`), so nothing is installed for real.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.setup_scripts import BASH, apt_calls, recording_apt_get, run_script, stub, stub_path

SCRIPT = Path(__file__).resolve().parents[2] / "loadtest" / "setup_h2load.sh"

pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")


def make_path(tmp_path: Path, *, uid: int = 0, apt: str | None = "ok", h2load: bool = False) -> Path:
    """A bin directory of stubs; `apt` is "ok", "offline" (update fails) or None (no apt-get)."""
    bin_dir = stub_path(tmp_path, uid)
    if apt == "ok":
        # `install` puts an h2load stub on PATH, as the real package would.
        recording_apt_get(bin_dir, tmp_path, on_install=f"cp {bin_dir}/id {bin_dir}/h2load")
    elif apt == "offline":
        offline = 'echo "Temporary failure resolving deb.debian.org" >&2; exit 100'
        recording_apt_get(bin_dir, tmp_path, fail_update=offline)
    if h2load:
        stub(bin_dir, "h2load", "exit 0")
    return bin_dir


def test_installs_as_root_after_saying_what_and_why(tmp_path: Path) -> None:
    done = run_script(SCRIPT, make_path(tmp_path))
    assert done.returncode == 0, done.stderr
    announce, result = done.stdout.splitlines()
    assert "installing h2load" in announce and "nghttp2-client" in announce and "--engine h2load" in announce
    assert "H2LOAD_INSTALL=no" in announce
    assert result.startswith("loadtest-setup: installed nghttp2-client")
    calls = apt_calls(tmp_path)
    assert calls[0].startswith("update")
    assert calls[1].startswith("install") and "nghttp2-client" in calls[1].split() and "-y" in calls[1].split()


def test_already_installed_does_nothing(tmp_path: Path) -> None:
    done = run_script(SCRIPT, make_path(tmp_path, h2load=True))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert apt_calls(tmp_path) == []


@pytest.mark.parametrize(
    ("options", "env", "reason"),
    [
        ({"uid": 1000}, {}, "installing it needs root"),
        ({"apt": None}, {}, "no apt-get on this system"),
        ({"apt": "offline"}, {}, "apt-get update failed, no network?"),
        ({}, {"H2LOAD_INSTALL": "no"}, "H2LOAD_INSTALL=no"),
    ],
    ids=["not-root", "no-apt-get", "no-network", "opted-out"],
)
def test_skips_in_one_line_and_exits_0(
    tmp_path: Path, options: dict[str, object], env: dict[str, str], reason: str
) -> None:
    done = run_script(SCRIPT, make_path(tmp_path, **options), **env)  # type: ignore[arg-type]
    assert done.returncode == 0
    lines = [line for line in done.stdout.splitlines() if not line.startswith("loadtest-setup: installing")]
    assert len(lines) == 1, done.stdout
    assert reason in lines[0] and "tests skip" in lines[0] and "apt-get install nghttp2-client" in lines[0]
    assert done.stderr == ""
    assert all(not call.startswith("install") for call in apt_calls(tmp_path))


def test_never_installs_without_announcing(tmp_path: Path) -> None:
    """Whenever apt-get is run, the announcement came first (the only stdout line before any apt-get output)."""
    done = run_script(SCRIPT, make_path(tmp_path, apt="offline"))
    assert apt_calls(tmp_path) == ["update -qq"]
    assert done.stdout.splitlines()[0].startswith("loadtest-setup: installing h2load")
