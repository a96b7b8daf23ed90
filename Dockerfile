# syntax=docker/dockerfile:1
# Tweet sentiment predictor image: deps -> train-deps -> model -> runtime.
#
# Layer order follows how often things change: the lock files first (rarely), then the training
# code and model build, then the predictor code (often). A predictor change rebuilds one small
# layer; a training change rebuilds the model but reuses every dependency layer.
#
# CPU (default):  buildah bud -t predictor:0.1.0 .          (or docker build)
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

# --- training dependencies: only the model stage sees them ----------------------------------------
FROM deps AS train-deps
COPY requirements-train.txt requirements-data.txt ./
RUN pip install -c constraints.txt -r requirements-train.txt \
    && pip install --no-deps -r requirements-data.txt

# --- the TorchScript model: python -m training.build --------------------------------------------
FROM train-deps AS model
ARG MODEL_MODE=quick
# Training shares the tokenizer, the model card and the metric buckets with serving; nothing
# else of predictor/ (tests/deploy/test_dockerfile.py checks this list against its imports).
COPY predictor/__init__.py predictor/metrics.py predictor/modelcard.py predictor/tokenization.py predictor/
COPY training/ training/
RUN python -m training.build --mode "${MODEL_MODE}" --out /models/sentiment

# --- runtime: venv + model + predictor code, nothing else ----------------------------------------
FROM base AS runtime
# uid/gid 10001: the chart's podSecurityContext runs as the same numeric user.
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin app
COPY --from=deps /opt/venv /opt/venv
COPY --from=model /models/sentiment /models/sentiment
WORKDIR /app
COPY predictor/ predictor/
ENV PREDICTOR_MODEL_DIR=/models/sentiment \
    HOME=/tmp
# Numeric, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["python", "-m", "predictor"]
CMD ["--model_name", "sentiment", "--http_port", "8080", "--grpc_port", "8081"]
