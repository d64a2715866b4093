#!/usr/bin/env bash
# Start (or reuse) a private Docker engine for gridrun's docker tests, and make sure it
# holds the offline test base image `gridrun-test-base:bookworm`.
#
# Idempotent; run as root by .ci/run (or by hand). No registry is reachable from CI, so
# the base image is a debootstrapped Debian bookworm (minbase + python3, venv, pip)
# imported with `docker import`. The rootfs tarball is cached in $CACHE_DIR so that a
# fresh engine re-imports it in seconds; the engine's data root is kept across runs too.
#
# The engine listens on a private socket (never the system one) and is started without
# systemd. The last line printed is `export DOCKER_HOST=...`, for `eval "$(...)"`:
#
#     eval "$(bash .ci/docker-engine.sh | tail -n 1)"
#
# When this run started the engine (rather than finding one answering), that line also
# sets GRIDRUN_CI_DOCKER_STARTED to dockerd's pid, so the caller stops exactly the
# engine it started (`scripts/test` does, on exit) and never one that was there before.
#
# Environment overrides: GRIDRUN_CI_DOCKER_DIR (socket, exec root, pidfile, log),
# GRIDRUN_CI_DOCKER_DATA (data root), GRIDRUN_CI_CACHE (rootfs tarball cache),
# GRIDRUN_CI_MIRROR (Debian mirror for debootstrap; default: the one apt uses here).
set -euo pipefail

RUN_DIR="${GRIDRUN_CI_DOCKER_DIR:-/tmp/gridrun-ci-docker}"
DATA_ROOT="${GRIDRUN_CI_DOCKER_DATA:-/var/lib/gridrun-ci-docker}"
CACHE_DIR="${GRIDRUN_CI_CACHE:-/var/cache/gridrun-ci}"
SOCKET="$RUN_DIR/docker.sock"
HOST="unix://$SOCKET"
IMAGE="gridrun-test-base:bookworm"
TARBALL="$CACHE_DIR/gridrun-test-base-bookworm.tar"

log() { echo "docker-engine.sh: $*" >&2; }

answers() { DOCKER_HOST="$HOST" timeout 5 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

install_tools() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq "${missing[@]}" >&2
    fi
}

debian_mirror() {
    if [ -n "${GRIDRUN_CI_MIRROR:-}" ]; then echo "$GRIDRUN_CI_MIRROR"; return; fi
    local url
    # deb822 sources (URIs: ...) first, then one-line sources (deb URL suite ...).
    url=$(grep -rhs '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{print $2}' | grep -E '/debian/?$' | head -n 1 || true)
    if [ -z "$url" ]; then
        url=$(grep -rhs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | awk '{print $2}' | grep -E '/debian/?$' | head -n 1 || true)
    fi
    echo "${url:-http://deb.debian.org/debian}"
}

STARTED=""  # dockerd's pid when this run started it

start_engine() {
    mkdir -p "$RUN_DIR" "$DATA_ROOT"
    if answers; then
        log "reusing the engine at $HOST"
        return
    fi
    local pidfile="$RUN_DIR/docker.pid"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        log "dockerd $(cat "$pidfile") is running but does not answer yet; waiting"
    else
        rm -f "$pidfile" "$SOCKET"
        log "starting dockerd on $HOST (log: $RUN_DIR/dockerd.log)"
        # setsid + nohup: the engine outlives this script and the shell that ran it.
        setsid nohup dockerd \
            --host "$HOST" \
            --data-root "$DATA_ROOT" \
            --exec-root "$RUN_DIR/exec" \
            --pidfile "$pidfile" \
            >"$RUN_DIR/dockerd.log" 2>&1 </dev/null &
        STARTED=pending
    fi
    for _ in $(seq 1 60); do
        if answers; then
            if [ "$STARTED" = pending ]; then STARTED=$(cat "$pidfile"); fi
            return
        fi
        sleep 1
    done
    log "dockerd did not answer within 60 s; last lines of its log:"
    tail -n 20 "$RUN_DIR/dockerd.log" >&2 || true
    exit 1
}

build_rootfs_tarball() {
    mkdir -p "$CACHE_DIR"
    local root="$CACHE_DIR/rootfs.tmp"
    rm -rf "$root"
    local mirror
    mirror=$(debian_mirror)
    log "debootstrapping bookworm (minbase + python3) from $mirror"
    debootstrap --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$root" "$mirror" >"$CACHE_DIR/debootstrap.log" 2>&1 || {
        tail -n 20 "$CACHE_DIR/debootstrap.log" >&2
        exit 1
    }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" --numeric-owner -cf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
    rm -rf "$root"
}

import_base_image() {
    if DOCKER_HOST="$HOST" docker image inspect "$IMAGE" >/dev/null 2>&1; then
        log "$IMAGE is present"
        return
    fi
    [ -s "$TARBALL" ] || build_rootfs_tarball
    log "importing $IMAGE from $TARBALL"
    DOCKER_HOST="$HOST" docker import \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        "$TARBALL" "$IMAGE" >&2
}

main() {
    if [ "$(id -u)" != 0 ]; then
        log "must run as root (it installs packages and starts dockerd)"
        exit 1
    fi
    install_tools
    start_engine
    import_base_image
    if [ -n "$STARTED" ]; then
        echo "export DOCKER_HOST=$HOST GRIDRUN_CI_DOCKER_STARTED=$STARTED"
    else
        echo "export DOCKER_HOST=$HOST"
    fi
}

main "$@"
