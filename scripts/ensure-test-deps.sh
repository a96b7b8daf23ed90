#!/usr/bin/env bash
# The system programs the test suite starts for real: install what is missing (Debian, as root),
# or fail naming it. Called by `make test` and `.ci/run`, so a fresh machine needs no other step.
set -euo pipefail
declare -A package_of=(
  [redis-server]=redis-server      # feature store, drift, sidecar tests
  [redis-sentinel]=redis-sentinel  # Sentinel failover tests
  [redis-cli]=redis-tools          # Redis Cluster creation
  [prometheus]=prometheus          # live metrics, promote, drift through Prometheus
  [promtool]=prometheus            # alert-rule unit tests
  [openssl]=openssl                # TLS certificates for the rediss:// tests
  [buildah]=buildah                # modelcars (mlops.publish --to oci://), the image build
  [skopeo]=skopeo                  # modelcar labels read from a registry
  [docker-registry]=docker-registry  # the OCI registry the modelcar tests push to
  [busybox]=busybox-static         # the modelcar's base (a static busybox)
  [podman]=podman                  # the container and pod tests (make container-test)
)
missing=()
for cmd in "${!package_of[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${package_of[$cmd]}")
done
((${#missing[@]})) || exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing test dependencies: ${missing[*]}" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "missing test dependencies (Debian packages): ${missing[*]}; install them (as root: apt-get install ${missing[*]})" >&2
  exit 1
fi
