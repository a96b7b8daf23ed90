#!/usr/bin/env bash
# Build the predictor image with buildah (chroot isolation, vfs storage: no daemon, no user
# namespaces needed) on the debootstrap base from scripts/make-base-image.sh.
#
# Offline plumbing, none of it in the Dockerfile: pip in the build gets this machine's CA bundle
# and wheel directory (/opt/wheels holds torch 2.13.0+cpu here) through mounted files, and the
# CPU torch is looked up on PyPI plus those wheels instead of the PyTorch index.
# Usage: scripts/build-image.sh IMAGE[:TAG] [BASE_IMAGE] [extra buildah args...]
set -euo pipefail

repo_root=$(cd "$(dirname "$0")/.." && pwd)
image=${1:?usage: build-image.sh IMAGE[:TAG] [BASE_IMAGE]}
base=${2:-localhost/sentiment-base:bookworm}
shift $(( $# >= 2 ? 2 : 1 ))

pipconf=$(mktemp)
trap 'rm -f "$pipconf"' EXIT
{
  echo "[global]"
  echo "cert = /etc/ssl/certs/ca-certificates.crt"
  [ -d /opt/wheels ] && echo "find-links = /wheels"
} > "$pipconf"
mounts=(-v "$pipconf:/etc/pip.conf:ro" -v /etc/ssl/certs:/etc/ssl/certs:ro)
[ -d /opt/wheels ] && mounts+=(-v /opt/wheels:/wheels:ro)

buildah --storage-driver vfs bud --isolation chroot --layers \
  --build-arg BASE_IMAGE="$base" \
  --build-arg TORCH_INDEX=https://pypi.org/simple \
  "${mounts[@]}" "$@" \
  -t "$image" -f "$repo_root/Dockerfile" "$repo_root"
