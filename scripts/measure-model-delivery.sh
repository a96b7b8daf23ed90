#!/usr/bin/env bash
# Time a model version's way to ready without an image build: publish to S3 (moto's server) and
# as a modelcar (buildah, pushed to a local docker-registry), KServe's download code into an
# empty /mnt/models-like directory, then the predictor from start to ready.
# Usage: scripts/measure-model-delivery.sh MODEL_DIR   (root: buildah; loopback servers only)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
model=$(cd "${1:?usage: measure-model-delivery.sh MODEL_DIR}" && pwd)
py=$repo/.venv/bin/python
work=$(mktemp -d /var/tmp/delivery.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
since() { "$py" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

s3=$(port); reg=$(port); http=$(port); grpc=$(port)
"$py" -m moto.server -H 127.0.0.1 -p "$s3" >"$work/moto.log" 2>&1 & pids+=($!)
printf 'version: 0.1\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: "127.0.0.1:%s"}\n' \
  "$work/registry" "$reg" >"$work/registry.yml"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 & pids+=($!)
export AWS_ENDPOINT_URL=http://127.0.0.1:$s3 AWS_ACCESS_KEY_ID=k AWS_SECRET_ACCESS_KEY=s AWS_DEFAULT_REGION=us-east-1
until curl -sf "$AWS_ENDPOINT_URL/moto-api/" >/dev/null && curl -sf "http://127.0.0.1:$reg/v2/" >/dev/null; do sleep 0.2; done
"$py" -c 'import boto3; boto3.client("s3").create_bucket(Bucket="models")'
echo "model: $model ($(du -sh "$model" | cut -f1))"

cd "$repo"
t=$(now); uri=$("$py" -m mlops.publish "$model" --to s3://models/sentiment 2>/dev/null)
echo "publish to S3: $(since "$t") s -> $uri"
t=$(now); car=$("$py" -m mlops.publish "$model" --to "oci://127.0.0.1:$reg/models/sentiment" --insecure-registry 2>/dev/null)
echo "publish modelcar (build + push): $(since "$t") s -> $car"

t=$(now)
"$py" -c 'import sys; from kserve_storage import Storage; Storage.download(sys.argv[1], sys.argv[2])' \
  "$uri" "$work/mnt/models" 2>/dev/null
echo "cold start: storage initializer download $(since "$t") s"
PREDICTOR_MODEL_DIR=$work/mnt/models "$py" -m predictor --model_name sentiment \
  --http_port "$http" --grpc_port "$grpc" >"$work/predictor.log" 2>&1 & pids+=($!)
until curl -sf "http://127.0.0.1:$http/v2/health/ready" >/dev/null; do sleep 0.1; done
echo "cold start: empty /mnt/models to ready $(since "$t") s (download + process start + load + warm-up)"
