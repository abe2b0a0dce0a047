#!/usr/bin/env bash
# CI services for the test suite: Debian's PostgreSQL (tests/test_postgres.py starts its own
# throw-away cluster with these binaries; the packaged cluster is started too, for the README
# recipe) and Chromium (the replay viewer test). Idempotent; works as root without sudo, or
# through sudo when it is available; exits 0 with a message where apt is unavailable.
set -u

log() { echo "ci_services: $*"; }

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    log "not root and no passwordless sudo: skipping service installation (the PostgreSQL/Chromium tests will skip)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    log "apt-get not available: skipping (the PostgreSQL/Chromium tests will skip with a reason)"
    exit 0
fi

need=""
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need="$need chromium"

if [ -n "$need" ]; then
    log "installing:$need"
    export DEBIAN_FRONTEND=noninteractive
    if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $need; }; then
        log "apt-get install of$need failed: continuing (the tests that need them will skip)"
        exit 0
    fi
else
    log "postgresql and chromium already installed"
fi

# Start the packaged cluster (harmless if it is already up; absent in minimal containers).
if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters --no-header 2>/dev/null | while read -r version cluster _port status _rest; do
        if [ "$status" != "online" ]; then
            $SUDO pg_ctlcluster "$version" "$cluster" start >/dev/null 2>&1 \
                && log "started PostgreSQL cluster $version/$cluster" \
                || log "could not start PostgreSQL cluster $version/$cluster (tests use their own cluster)"
        else
            log "PostgreSQL cluster $version/$cluster already online"
        fi
    done
fi
exit 0
