#!/usr/bin/env bash
# Install h2load (Debian/Ubuntu package nghttp2-client) for `--engine h2load`, if it is missing.
set -euo pipefail

if command -v h2load >/dev/null 2>&1; then
    exit 0
fi

if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && apt-get install -y -qq nghttp2-client
        exit 0
    fi
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n apt-get update -qq && sudo -n apt-get install -y -qq nghttp2-client
        exit 0
    fi
fi

echo "h2load not found: install nghttp2 (Debian/Ubuntu: apt-get install nghttp2-client, as root)" >&2
exit 1
