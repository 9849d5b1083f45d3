#!/usr/bin/env bash
# `make engine`: make sure a Docker engine answers `docker info`.
#
# - If one answers already, say so and exit 0 (idempotent; cheap to run again).
# - Otherwise, as root on Debian: install Debian's docker.io (Docker 20.10, API 1.41) with
#   apt-get, start dockerd in the background (log: $BUILDER_DOCKERD_LOG, default
#   /var/log/builder-dockerd.log) with the overlay2 storage driver (vfs if overlay2 does not
#   work here), and poll `docker info` until it answers (bounded: $BUILDER_ENGINE_WAIT s).
# - Anywhere else: print what to install and exit 1.
#
# Works without a TTY and without systemd (CI: fresh clone, fresh machine, root, CI=true).
# The docker client used is whatever `docker` is first on PATH (a newer client negotiates
# the API version down to the 20.10 daemon's 1.41); docker.io's own client is the fallback.
set -euo pipefail

LOG=${BUILDER_DOCKERD_LOG:-/var/log/builder-dockerd.log}
WAIT=${BUILDER_ENGINE_WAIT:-60}
PIDFILE=/var/run/docker.pid

say() { echo "engine: $*"; }

engine_answers() {
    command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1
}

server_version() {
    timeout 10 docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}}), client {{.Client.Version}}' 2>/dev/null || true
}

if engine_answers; then
    say "a Docker engine already answers: $(server_version)"
    exit 0
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "engine: no Docker engine answers 'docker info'; install and start Docker (e.g. 'apt-get install docker.io' as root on Debian, or Docker Engine from docs.docker.com), then rerun 'make engine'." >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive

apt_install() {
    # Install packages; run `apt-get update` only when the package lists cannot serve them.
    local need=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
    done
    [ ${#need[@]} -eq 0 ] && return 0
    say "apt-get install ${need[*]}"
    # No init system here, and dockerd is started below by this script: keep package
    # maintainer scripts from starting services (the usual policy-rc.d switch).
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        made_policy=1
    fi
    local rc=0
    local opts=(-y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    if ! apt-get install "${opts[@]}" "${need[@]}"; then
        say "apt-get install failed; running apt-get update and retrying"
        apt-get update -q && apt-get install "${opts[@]}" "${need[@]}" || rc=$?
    fi
    [ "$made_policy" = 1 ] && rm -f "$policy"
    return "$rc"
}

if ! command -v dockerd >/dev/null 2>&1; then
    # docker.io without its recommends (apparmor, needrestart, git, ...), plus two it uses.
    apt_install docker.io ca-certificates xz-utils
fi
command -v docker >/dev/null 2>&1 || { echo "engine: no docker client on PATH after installing docker.io" >&2; exit 1; }

dockerd_pid() {
    # PID of a running dockerd started from the pidfile, if any.
    local pid
    [ -s "$PIDFILE" ] || return 1
    pid=$(cat "$PIDFILE")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q dockerd "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

wait_ready() {
    # Poll `docker info` until it answers, the daemon dies, or $WAIT seconds pass.
    local pid=$1 deadline=$((SECONDS + WAIT))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if timeout 5 docker info >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || dockerd_pid >/dev/null || return 2
        sleep 0.5
    done
    return 1
}

start_dockerd() {
    # Start dockerd in the background with the given storage driver; echo its PID.
    local driver=$1 args=()
    # A storage driver named in daemon.json must not be given twice (dockerd refuses to start).
    if ! grep -qs '"storage-driver"' /etc/docker/daemon.json; then
        args+=(--storage-driver "$driver")
    fi
    mkdir -p "$(dirname "$LOG")"
    {
        echo "=== $(date -u +%FT%TZ) engine.sh: dockerd ${args[*]}"
    } >>"$LOG"
    setsid nohup dockerd "${args[@]}" >>"$LOG" 2>&1 </dev/null &
    echo $!
}

if pid=$(dockerd_pid); then
    say "dockerd (pid $pid) is running but not answering yet; waiting up to ${WAIT}s"
    if wait_ready "$pid"; then
        say "ready: $(server_version)"
        exit 0
    fi
    echo "engine: dockerd pid $pid does not answer; see $LOG" >&2
    exit 1
fi

for driver in overlay2 vfs; do
    say "starting dockerd (storage driver $driver), log $LOG"
    pid=$(start_dockerd "$driver")
    t0=$SECONDS
    rc=0
    wait_ready "$pid" || rc=$?
    if [ "$rc" = 0 ]; then
        actual=$(timeout 10 docker info --format '{{.Driver}}' 2>/dev/null || echo '?')
        say "ready after $((SECONDS - t0))s, pid $pid, storage driver $actual: $(server_version)"
        if [ "$driver" != overlay2 ]; then
            say "NOTE: overlay2 did not work here; fell back to $driver (slower, uses more disk)"
        fi
        exit 0
    fi
    if [ "$rc" = 1 ]; then
        echo "engine: dockerd (pid $pid) did not answer within ${WAIT}s; see $LOG" >&2
        tail -n 20 "$LOG" >&2 || true
        exit 1
    fi
    say "dockerd exited with storage driver $driver; last log lines:"
    tail -n 10 "$LOG" | sed 's/^/    /'
done
echo "engine: dockerd would not start; see $LOG" >&2
exit 1
