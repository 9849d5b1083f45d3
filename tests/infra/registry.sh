#!/usr/bin/env bash
# `make registry`: a Docker registry (Debian's docker-registry, distribution 2.8) on
# 127.0.0.1:5000, with the configuration in tests/infra/registry.yml (no auth, no TLS).
#
# - If http://127.0.0.1:5000/v2/ answers already, say so and exit 0 (idempotent).
# - Otherwise, as root on Debian, install docker-registry if /usr/bin/docker-registry is
#   missing (its own service is not started: there is no init system here, and its packaged
#   config would listen on every interface with htpasswd auth), start
#   `docker-registry serve tests/infra/registry.yml` in the background and poll /v2/ until it
#   answers (bounded: $BUILDER_REGISTRY_WAIT s, default 30).
# Storage: $BUILDER_REGISTRY_DIR (default /var/lib/builder-registry, outside the checkout so
# `git clean` leaves it alone). Log: $BUILDER_REGISTRY_LOG (default /var/log/builder-registry.log).
# Stop it with: kill "$(cat /var/run/builder-registry.pid)".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONFIG=$HERE/registry.yml
ADDR=127.0.0.1:5000
URL=http://$ADDR/v2/
DIR=${BUILDER_REGISTRY_DIR:-/var/lib/builder-registry}
LOG=${BUILDER_REGISTRY_LOG:-/var/log/builder-registry.log}
PIDFILE=/var/run/builder-registry.pid
WAIT=${BUILDER_REGISTRY_WAIT:-30}

say() { echo "registry: $*"; }
answers() { curl -fsS --max-time 3 -o /dev/null "$URL" 2>/dev/null; }

if answers; then
    say "a registry already answers at $URL"
    exit 0
fi

if ! command -v docker-registry >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "registry: nothing answers at $URL; install a Docker registry (Debian: 'apt-get install docker-registry' as root) or run one on $ADDR, then rerun 'make registry'." >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    say "apt-get install docker-registry"
    # Keep the package's init script from starting its own registry (policy-rc.d switch).
    policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        made_policy=1
    fi
    opts=(-y -q --no-install-recommends)
    rc=0
    apt-get install "${opts[@]}" docker-registry ||
        { apt-get update -q && apt-get install "${opts[@]}" docker-registry; } || rc=$?
    [ "$made_policy" = 1 ] && rm -f "$policy"
    [ "$rc" = 0 ] || exit "$rc"
fi

# A registry of ours that is still starting: wait for it instead of starting a second one.
pid=""
if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null &&
    grep -q docker-registry "/proc/$(cat "$PIDFILE")/cmdline" 2>/dev/null; then
    pid=$(cat "$PIDFILE")
    say "docker-registry (pid $pid) is running but not answering yet; waiting"
else
    mkdir -p "$DIR" "$(dirname "$LOG")"
    echo "=== $(date -u +%FT%TZ) registry.sh: docker-registry serve $CONFIG (storage $DIR)" >>"$LOG"
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=$DIR \
        setsid nohup docker-registry serve "$CONFIG" >>"$LOG" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$PIDFILE"
    say "started docker-registry (pid $pid), storage $DIR, log $LOG"
fi

deadline=$((SECONDS + WAIT))
while [ "$SECONDS" -lt "$deadline" ]; do
    if answers; then
        say "ready at $URL"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "registry: docker-registry exited; last log lines:" >&2
        tail -n 15 "$LOG" >&2 || true
        exit 1
    fi
    sleep 0.3
done
echo "registry: nothing answers at $URL after ${WAIT}s; see $LOG" >&2
exit 1
