#!/usr/bin/env bash
# `make observability-setup`: promtool, which checks and unit-tests deploy/prometheus/alerts.yaml
# (tests/deploy/test_observability.py runs `promtool check rules` and `promtool test rules`).
#
# promtool comes with the Debian/Ubuntu package `prometheus` (the Prometheus server and its tools, about 20 MB; only
# promtool is used; on a host run by systemd the package also enables its prometheus service: `systemctl disable
# --now prometheus` stops it), so this script installs a system package with apt-get. It says so before doing it, and does it only as root. Wherever it cannot (not root, no apt-get, no
# network) or must not (PROMTOOL_INSTALL=no), it prints one line saying why and how to install promtool by hand,
# and exits 1: the Makefile goes on, and the tests that need promtool skip.
set -uo pipefail
here="${BASH_SOURCE[0]%/*}"  # this script's directory, without dirname(1)
[ "$here" = "${BASH_SOURCE[0]}" ] && here=.
source "$here/../../scripts/apt_install.sh"

readonly PACKAGE=prometheus

fail() {
    echo "observability-setup: promtool not installed ($1); the alert rule tests skip." \
        "To add it: apt-get install $PACKAGE (as root), or promtool from a release at prometheus.io" >&2
    exit 1
}

if command -v promtool >/dev/null 2>&1; then
    exit 0
fi
if [ "${PROMTOOL_INSTALL:-yes}" = "no" ]; then
    fail "PROMTOOL_INSTALL=no"
fi
if ! command -v apt-get >/dev/null 2>&1; then
    fail "no apt-get on this system"
fi
if [ "$(id -u)" -ne 0 ]; then
    fail "installing it needs root"
fi

echo "observability-setup: installing promtool for the alert rule tests:" \
    "apt-get install $PACKAGE (a Debian package: the Prometheus server, whose service systemd may start, and" \
    "promtool; as root; PROMTOOL_INSTALL=no skips this)"
log="$(mktemp "${TMPDIR:-/tmp}/setup_promtool.XXXXXX")" || fail "cannot create a log file"
apt_install "$log" "$PACKAGE"
case $? in
    1) fail "apt-get update failed, no network? see $log" ;;
    2) fail "apt-get install $PACKAGE failed, see $log" ;;
esac
if ! command -v promtool >/dev/null 2>&1; then
    fail "$PACKAGE installed but promtool is not on PATH"
fi
rm -f "$log"
echo "observability-setup: installed $PACKAGE ($(command -v promtool))"
