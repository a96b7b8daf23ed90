#!/usr/bin/env bash
# Make the Dockerfile's base image offline: Debian bookworm + python3 by debootstrap, imported
# into buildah/podman's vfs storage as IMAGE (default localhost/sentiment-base:bookworm).
#
# Why: these machines reach Debian's mirror and PyPI but no container registry, so
# python:3.11-slim cannot be pulled. Debian bookworm's python3 is 3.11, the version the lock is
# for. Needs root (debootstrap, and buildah without a user namespace). Idempotent.
set -euo pipefail

image=${1:-localhost/sentiment-base:bookworm}
storage=(--storage-driver vfs)

missing=()
for tool in debootstrap buildah podman; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "make-base-image: installing ${missing[*]} (and runc) from Debian" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" runc >/dev/null
fi

if buildah "${storage[@]}" inspect --type image "$image" >/dev/null 2>&1; then
  echo "make-base-image: $image exists" >&2
  exit 0
fi

rootfs=$(mktemp -d /var/tmp/sentiment-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "make-base-image: debootstrap bookworm into $rootfs" >&2
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
chmod 0755 "$rootfs"  # mktemp made it 0700, and tar records it as the image's `/`
tar -C "$rootfs" -c . | podman "${storage[@]}" import \
  --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' - "$image" >/dev/null
echo "make-base-image: $image ($(podman "${storage[@]}" image inspect "$image" --format '{{.Size}}') bytes)" >&2
