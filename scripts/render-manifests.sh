#!/usr/bin/env bash
# Render the chart into plain manifests for `kubectl apply` users (make manifests).
#
# One file per named values file in charts/sentiment/ci/, plus manifests/kubectl-apply.values.yaml,
# which points Redis at a Secret the user creates (a generated password would change on every
# render). Release `sentiment`, namespace `sentiment`, no helm test objects.
# Usage: scripts/render-manifests.sh [OUT_DIR]   (default: manifests/)
set -euo pipefail

repo_root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$repo_root/manifests}
"$repo_root/scripts/fetch-k8s-tools.sh"
helm=$repo_root/.tools/bin/helm
chart=$repo_root/charts/sentiment

# manifest name -> values file under the chart's ci/
declare -A variants=(
  [knative]=knative-values.yaml
  [standard-hpa]=standard-hpa-values.yaml
  [gpu]=gpu-values.yaml
)
mkdir -p "$out"
for name in "${!variants[@]}"; do
  values=${variants[$name]}
  {
    echo "# Rendered from charts/sentiment with ci/$values and manifests/kubectl-apply.values.yaml"
    echo "# by scripts/render-manifests.sh (make manifests). Do not edit: change the chart and re-render."
    HELM_CACHE_HOME=$repo_root/.tools/helm/cache HELM_CONFIG_HOME=$repo_root/.tools/helm/config \
      HELM_DATA_HOME=$repo_root/.tools/helm/data \
      "$helm" template sentiment "$chart" --namespace sentiment --skip-tests \
      -f "$chart/ci/$values" -f "$repo_root/manifests/kubectl-apply.values.yaml"
  } > "$out/$name.yaml"
done
