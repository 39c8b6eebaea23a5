#!/usr/bin/env bash
# The native data plane's build toolchain (docs/native-data-plane.md): gRPC C++ and protobuf from Debian.
# Installs them as root with apt-get, saying so first; elsewhere prints one line and exits 0, and the native
# tests skip. NATIVE_INSTALL=no opts out.
set -uo pipefail
here="${BASH_SOURCE[0]%/*}"  # this script's directory, without dirname(1)
[ "$here" = "${BASH_SOURCE[0]}" ] && here=.
source "$here/apt_install.sh"
PACKAGES=(libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev pkg-config)

have_toolchain() {
    command -v protoc >/dev/null && command -v grpc_cpp_plugin >/dev/null && pkg-config --exists grpc++ protobuf 2>/dev/null
}

if have_toolchain; then
    exit 0
fi
if [ "${NATIVE_INSTALL:-yes}" = "no" ] || [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null; then
    echo "native-setup: gRPC C++ toolchain missing; the native extension is not built and its tests skip" \
        "(as root: apt-get install ${PACKAGES[*]})"
    exit 0
fi
echo "native-setup: installing the native extension's toolchain: apt-get install ${PACKAGES[*]}" \
    "(Debian packages, as root; NATIVE_INSTALL=no skips this)"
log="$(mktemp "${TMPDIR:-/tmp}/setup_native.XXXXXX")"
if ! apt_install "$log" "${PACKAGES[@]}"; then
    echo "native-setup: apt-get failed (see $log); the native extension is not built and its tests skip"
    exit 0
fi
have_toolchain || echo "native-setup: installed, but the toolchain is still incomplete; see $log"
exit 0
