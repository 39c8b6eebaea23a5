#!/usr/bin/env bash
# `make loadtest-setup`: h2load, the C load generator behind `python -m loadtest --engine h2load`.
#
# It comes from the Debian/Ubuntu package nghttp2-client, so this script installs a system package with apt-get.
# It says so before doing it, and does it only as root. Wherever it cannot (not root, no apt-get, no network) or
# must not (H2LOAD_INSTALL=no), it prints one line saying how to install h2load by hand and exits 0: the h2load
# engine is then unavailable and its tests skip, and everything else works.
set -uo pipefail
here="${BASH_SOURCE[0]%/*}"  # this script's directory, without dirname(1)
[ "$here" = "${BASH_SOURCE[0]}" ] && here=.
source "$here/../scripts/apt_install.sh"

readonly PACKAGE=nghttp2-client

skip() {
    echo "loadtest-setup: h2load not installed ($1); the h2load engine is unavailable and its tests skip." \
        "To add it: apt-get install $PACKAGE (as root)"
    exit 0
}

if command -v h2load >/dev/null 2>&1; then
    exit 0
fi
if [ "${H2LOAD_INSTALL:-yes}" = "no" ]; then
    skip "H2LOAD_INSTALL=no"
fi
if ! command -v apt-get >/dev/null 2>&1; then
    skip "no apt-get on this system"
fi
if [ "$(id -u)" -ne 0 ]; then
    skip "installing it needs root"
fi

echo "loadtest-setup: installing h2load for the load test's --engine h2load and its tests:" \
    "apt-get install $PACKAGE (a Debian package, as root; H2LOAD_INSTALL=no skips this)"
log="$(mktemp "${TMPDIR:-/tmp}/setup_h2load.XXXXXX")" || skip "cannot create a log file"
apt_install "$log" "$PACKAGE"
case $? in
    1) skip "apt-get update failed, no network? see $log" ;;
    2) skip "apt-get install $PACKAGE failed, see $log" ;;
esac
if ! command -v h2load >/dev/null 2>&1; then
    skip "$PACKAGE installed but h2load is not on PATH"
fi
rm -f "$log"
echo "loadtest-setup: installed $PACKAGE ($(command -v h2load))"
