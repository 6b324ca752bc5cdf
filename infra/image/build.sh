#!/usr/bin/env bash
# `make image`: builds the project's image (Dockerfile at the repository root) as payment-platform:<version>,
# with podman or docker, whichever is present.
#
# The Dockerfile's base is the official Python image (build argument BASE_IMAGE). When that image is neither
# present nor pullable (no registry reachable), a stand-in is built once from Debian's own packages and kept:
# debootstrap (minbase bookworm with python3, python3-venv, ca-certificates) from the apt source this machine
# is configured with, imported as localhost/payment-platform-rootfs:bookworm, then infra/image/base.Containerfile
# (a virtualenv on PATH) as localhost/payment-platform-base:bookworm. Delete those two images to rebuild them.
#
#   BASE_IMAGE=...        build on this base, whatever it is (no pull, no stand-in)
#   IMAGE=name:tag        the tag to build (default payment-platform:<pyproject version>)
#   CONTAINER_ENGINE=...  podman or docker
set -euo pipefail
. "$(dirname "$0")/engine.sh"
cd "$REPO_DIR"

OFFICIAL_BASE="$(sed -n 's/^ARG BASE_IMAGE=\(.*\)$/\1/p' Dockerfile | head -n 1)"
LOCAL_ROOTFS=localhost/payment-platform-rootfs:bookworm
LOCAL_BASE=localhost/payment-platform-base:bookworm
rootfs=""

has_image() { "$CONTAINER_ENGINE" image inspect "$1" >/dev/null 2>&1; }

# the Debian mirror apt uses here (the first one serving bookworm main), so debootstrap needs no other source
debian_mirror() {
    apt-cache policy 2>/dev/null | awk '$3 ~ /^bookworm\/main$/ && $2 ~ /^https?:/ {print $2; exit}'
}

build_local_base() {
    if ! has_image "$LOCAL_ROOTFS"; then
        command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install -y debootstrap" >&2; exit 1; }
        [ "$(id -u)" = 0 ] || { echo "debootstrap needs root to build the stand-in base image" >&2; exit 1; }
        local mirror
        mirror="${DEBIAN_MIRROR:-$(debian_mirror)}"
        mirror="${mirror:-http://deb.debian.org/debian}"
        rootfs="$(mktemp -d)"
        trap 'rm -rf "$rootfs" "$rootfs.log"' EXIT
        echo "== debootstrap bookworm from $mirror (once; kept as $LOCAL_ROOTFS)"
        local began=$SECONDS
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log" >&2; exit 1; }
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs.log"
        tar -C "$rootfs" -c . | "$CONTAINER_ENGINE" import - "$LOCAL_ROOTFS" >/dev/null
        rm -rf "$rootfs"
        echo "== $LOCAL_ROOTFS in $((SECONDS - began)) s"
    fi
    echo "== $LOCAL_BASE from $LOCAL_ROOTFS"
    local step=$SECONDS
    "$CONTAINER_ENGINE" build --quiet --build-arg "ROOTFS_IMAGE=$LOCAL_ROOTFS" -t "$LOCAL_BASE" \
        -f infra/image/base.Containerfile infra/image >/dev/null
    echo "== $LOCAL_BASE in $((SECONDS - step)) s"
}

choose_base() {
    if [ -n "${BASE_IMAGE:-}" ]; then
        echo "$BASE_IMAGE"
    elif has_image "$OFFICIAL_BASE" || "$CONTAINER_ENGINE" pull -q "$OFFICIAL_BASE" >/dev/null 2>&1; then
        echo "$OFFICIAL_BASE"
    else
        echo "== $OFFICIAL_BASE cannot be pulled: building on a Debian stand-in" >&2
        has_image "$LOCAL_BASE" || build_local_base >&2
        echo "$LOCAL_BASE"
    fi
}

base="$(choose_base)"
build_options=(--build-arg "BASE_IMAGE=$base" -t "$IMAGE")
if [ "$CONTAINER_ENGINE" = podman ]; then
    # pip in a build step reaches PyPI through the host's network and trusts the host's CA bundle
    build_options+=(--network=host --volume /etc/ssl/certs:/etc/ssl/certs:ro)
fi
echo "== $IMAGE on $base ($CONTAINER_ENGINE)"
began=$SECONDS
"$CONTAINER_ENGINE" build "${build_options[@]}" -f Dockerfile .
echo "== built $IMAGE in $((SECONDS - began)) s: $("$CONTAINER_ENGINE" image inspect --format '{{.Size}}' "$IMAGE") bytes"
