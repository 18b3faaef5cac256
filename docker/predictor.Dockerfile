# syntax=docker/dockerfile:1.7
# tessera predictor image: `tessera serve model`, the KServe V2 predictor the chart's
# InferenceService runs on the GPU pool. KServe's storage initializer puts the model
# bundle in /mnt/models before this container starts.
#
# Build from the repository root:
#   docker build -f docker/predictor.Dockerfile -t REGISTRY/tessera-predictor:TAG .
#
# TensorFlow comes with its CUDA libraries from PyPI (tensorflow[and-cuda]); the GKE
# GPU node provides the driver. No Beam here: the predictor imports the raster core
# and models only.

ARG TENSORFLOW_SPEC="tensorflow[and-cuda]==2.21.*"

FROM python:3.11.13-slim-bookworm AS build
ARG TENSORFLOW_SPEC
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV VIRTUAL_ENV=/opt/venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv "${VIRTUAL_ENV}"
ENV PATH="${VIRTUAL_ENV}/bin:${PATH}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tessera ./tessera
COPY transforms ./transforms
COPY models ./models
COPY beam_pipelines ./beam_pipelines
COPY services ./services
COPY benchmarks ./benchmarks
# DL3013: this installs the repository itself; its dependency ranges live in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[serve]" "${TENSORFLOW_SPEC}" \
 && python -c "import kserve, tensorflow; print(tensorflow.__version__)" \
 && tessera serve model --help > /dev/null

FROM python:3.11.13-slim-bookworm AS final
LABEL org.opencontainers.image.title="tessera-predictor" \
      org.opencontainers.image.source="https://github.com/tessera-eo/tessera" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 tessera \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin tessera
COPY --from=build /opt/venv /opt/venv
ENV VIRTUAL_ENV=/opt/venv \
    PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    TF_CPP_MIN_LOG_LEVEL=1
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/v2/health/live', timeout=4).status != 200)"]
ENTRYPOINT ["tessera"]
CMD ["serve", "model", "--model", "/mnt/models", "--host", "0.0.0.0", "--port", "8080"]
