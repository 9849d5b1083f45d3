#!/usr/bin/env bash
# `make parent-image`: make sure the parent image python:3.11-slim exists in the local engine.
#
# 1. Present already: done (set BUILDER_PARENT_REBUILD=1 to build it again).
# 2. Else `docker pull python:3.11-slim`, bounded by $BUILDER_PULL_TIMEOUT seconds (20).
# 3. Else (no container registry reachable, as on the development machine) build an
#    equivalent from Debian packages: debootstrap a minimal bookworm with python3, venv, pip
#    and ca-certificates through the same Debian mirror the host's apt uses, then
#    `docker import` it as python:3.11-slim. In that image:
#    - `python` and `pip` are on PATH (/usr/local/bin symlinks to python3 and pip3);
#    - EXTERNALLY-MANAGED is removed, so `pip install` works as in the official image;
#    - the host CA bundle (which holds this machine's TLS-intercepting proxy CA) is at
#      /usr/local/share/ca-certificates/host-ca.crt and also replaces
#      /etc/ssl/certs/ca-certificates.crt (update-ca-certificates keeps it in), with PIP_CERT
#      and REQUESTS_CA_BUNDLE pointing at it: a pip from PyPI uses its own certifi bundle;
#    - proxy variables (HTTP(S)_PROXY, NO_PROXY) and an http(s) pip index set on the host
#      are carried over; file:// indexes are not (they do not exist inside a container).
# Downloaded .debs are cached in $BUILDER_DEBOOTSTRAP_CACHE (/var/cache/builder-debootstrap).
# Python there is Debian's 3.11.2, not the official image's latest 3.11.x.
# Needs root and apt-get for step 3.
set -euo pipefail

IMAGE=python:3.11-slim
SUITE=bookworm
PULL_TIMEOUT=${BUILDER_PULL_TIMEOUT:-20}
HOST_CA=${BUILDER_HOST_CA:-/etc/ssl/certs/ca-certificates.crt}
IMAGE_CA=/usr/local/share/ca-certificates/host-ca.crt
# Downloaded .debs are kept here, so a rebuild on the same machine skips the download.
DEB_CACHE=${BUILDER_DEBOOTSTRAP_CACHE:-/var/cache/builder-debootstrap}
IMAGE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "parent-image: $*"; }
T0=$SECONDS
elapsed() { echo "$((SECONDS - T0))s"; }

docker info >/dev/null 2>&1 || { echo "parent-image: no Docker engine answers; run 'make engine' first" >&2; exit 1; }

if [ "${BUILDER_PARENT_REBUILD:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    say "$IMAGE is present ($(docker image inspect -f '{{.Id}}' "$IMAGE" | cut -c1-19)); nothing to do"
    exit 0
fi

if [ "${BUILDER_PARENT_REBUILD:-0}" != 1 ]; then
    say "trying 'docker pull $IMAGE' (at most ${PULL_TIMEOUT}s)"
    if timeout "$PULL_TIMEOUT" docker pull -q "$IMAGE" >/dev/null 2>&1; then
        say "pulled $IMAGE in $(elapsed)"
        exit 0
    fi
    say "pull failed after $(elapsed); building an equivalent from Debian packages"
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "parent-image: cannot pull $IMAGE, and building it needs root on Debian (debootstrap); pull or build $IMAGE by other means" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! command -v debootstrap >/dev/null 2>&1 || [ ! -s /usr/share/keyrings/debian-archive-keyring.gpg ]; then
    say "apt-get install debootstrap debian-archive-keyring"
    opts=(-y -q --no-install-recommends)
    apt-get install "${opts[@]}" debootstrap debian-archive-keyring wget ||
        { apt-get update -q && apt-get install "${opts[@]}" debootstrap debian-archive-keyring wget; }
fi

debian_mirror() {
    # The first Debian archive URI in the host's apt sources (one-line and deb822 formats),
    # leaving out security and non-Debian repositories.
    local f uri
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; break } }' "$f" |
            grep -v -e security -e '/debian-' | grep '/debian/*$' | head -n1 || true)
        [ -n "$uri" ] && { echo "${uri%/}"; return; }
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f" |
            grep -v -e security -e '/debian-' | grep '/debian/*$' | head -n1 || true)
        [ -n "$uri" ] && { echo "${uri%/}"; return; }
    done
    echo http://deb.debian.org/debian
}
MIRROR=$(debian_mirror)

# An apt-level proxy (Acquire::http::Proxy) applies to debootstrap's wget too.
apt_proxy=$(apt-config dump 2>/dev/null | sed -n 's/^Acquire::http::Proxy "\(.*\)";$/\1/p' | head -n1)
if [ -n "$apt_proxy" ] && [ -z "${http_proxy:-}" ]; then
    export http_proxy=$apt_proxy
fi

WORK=$(mktemp -d /var/tmp/builder-parent.XXXXXX)
ROOTFS=$WORK/rootfs
cleanup() {
    # debootstrap mounts /proc and /sys in the target while it runs; never delete through them.
    local m
    for m in $(awk -v r="$ROOTFS" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

say "debootstrap --variant=minbase $SUITE from $MIRROR"
t=$SECONDS
mkdir -p "$DEB_CACHE"
if ! debootstrap --cache-dir="$DEB_CACHE" --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    tail -n 30 "$WORK/debootstrap.log" >&2
    [ -f "$ROOTFS/debootstrap/debootstrap.log" ] && tail -n 30 "$ROOTFS/debootstrap/debootstrap.log" >&2
    echo "parent-image: debootstrap failed" >&2
    exit 1
fi
say "debootstrap took $((SECONDS - t))s"

# python/pip as in the official image.
ln -sf /usr/bin/python3 "$ROOTFS/usr/local/bin/python"
ln -sf /usr/bin/pip3 "$ROOTFS/usr/local/bin/pip"
rm -f "$ROOTFS"/usr/lib/python3*/EXTERNALLY-MANAGED

# Trust what the host trusts (this machine's TLS-intercepting proxy CA included).
install -m 0644 "$HOST_CA" "$ROOTFS$IMAGE_CA"
install -m 0644 "$HOST_CA" "$ROOTFS/etc/ssl/certs/ca-certificates.crt"

# Proxy variables and an http(s) pip index from the host, if any.
changes=(
    --change "ENV PATH=$IMAGE_PATH"
    --change "ENV LANG=C.UTF-8"
    --change "ENV PIP_CERT=$IMAGE_CA"
    --change "ENV REQUESTS_CA_BUNDLE=$IMAGE_CA"
    --change "LABEL org.builder.parent=debootstrap-$SUITE"
    --change 'CMD ["python3"]'
)
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    if [ -n "${!v:-}" ]; then
        changes+=(--change "ENV $v=${!v}")
        say "carrying $v into the image"
    fi
done
pip_conf=""
for key in index-url extra-index-url trusted-host; do
    # `pip config get` answers from the host's pip configuration files.
    val=$(python3 -m pip config get "global.$key" 2>/dev/null || true)
    [ "$key" = trusted-host ] || val=$(tr ' ' '\n' <<<"$val" | grep -E '^https?://' | tr '\n' ' ' || true)
    val=${val% }
    [ -n "$val" ] && pip_conf+="$key = $val"$'\n'
done
for v in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST; do
    if [[ "${!v:-}" =~ ^https?:// ]] || { [ "$v" = PIP_TRUSTED_HOST ] && [ -n "${!v:-}" ]; }; then
        changes+=(--change "ENV $v=${!v}")
        say "carrying $v into the image"
    fi
done
if [ -n "$pip_conf" ]; then
    printf '[global]\n%s' "$pip_conf" >"$ROOTFS/etc/pip.conf"
    say "wrote the host's pip index settings to /etc/pip.conf in the image"
fi

# Keep it small.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin \
    "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* \
    "$ROOTFS"/usr/share/info/* "$ROOTFS"/var/log/*.log "$ROOTFS"/debootstrap
find "$ROOTFS/usr/lib" -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'C.*' -exec rm -rf {} + 2>/dev/null || true

# Import (no /proc or /sys mounts may remain in the tree).
if awk -v r="$ROOTFS" 'index($2, r) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
    for m in $(awk -v r="$ROOTFS" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r); do umount -l "$m"; done
fi
t=$SECONDS
id=$(tar --numeric-owner -C "$ROOTFS" -c . | docker import "${changes[@]}" - "$IMAGE")
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
say "imported $IMAGE ${id:0:19} ($((size / 1000000)) MB) in $((SECONDS - t))s"

version=$(docker run --rm "$IMAGE" python -c 'import sys; print(sys.version.split()[0])')
say "built $IMAGE (Python $version) in $(elapsed) in total"
