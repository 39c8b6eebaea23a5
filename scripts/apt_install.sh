# Sourced by the setup scripts that install a Debian package for `make test` (loadtest/setup_h2load.sh,
# deploy/prometheus/setup_promtool.sh, scripts/setup_native.sh); each keeps its own checks, words and exit code.
#
# apt_install LOG PACKAGE...: `apt-get update`, then install PACKAGEs without recommends, output into LOG.
# Returns 0 when installed, 1 when the update failed (often: no network), 2 when the install failed.
# Without a network apt-get update can hang on its retries: both are bounded where timeout(1) exists.
apt_install() {
    local log="$1"
    shift
    local limit=()
    if command -v timeout >/dev/null 2>&1; then
        limit=(timeout 180)
    fi
    "${limit[@]}" apt-get update -qq >"$log" 2>&1 || return 1
    DEBIAN_FRONTEND=noninteractive "${limit[@]}" apt-get install -y -qq --no-install-recommends "$@" >>"$log" 2>&1 \
        || return 2
}
