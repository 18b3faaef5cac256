# syntax=docker/dockerfile:1.7
# tessera worker image: Beam pipelines (`tessera infer`, `tessera mosaic`), the trigger
# and products services, helm test pods; also the Dataflow custom SDK container.
#
# Build from the repository root:
#   docker build -f docker/worker.Dockerfile -t REGISTRY/tessera-worker:TAG .
#
# Stages:
#   web    npm ci of the lockfile: Leaflet for the products service's map page.
#   beam   the pinned Beam SDK image; only its boot launcher (/opt/apache/beam) is taken,
#          as Dataflow's custom-container docs describe. Its Python (3.11) matches ours.
#   build  compilers + a venv with `pip install .[all]` (wheels for every heavy dep,
#          gcc only for the odd sdist).
#   final  slim runtime: the venv, the launcher, a non-root user. No compilers, no pip cache.

FROM apache/beam_python3.11_sdk:2.77.0 AS beam

# The map page's web-map library, from the lockfile (node_modules is not in the context).
FROM node:20.19.5-bookworm-slim AS web
WORKDIR /web
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

FROM python:3.11.13-slim-bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Build stage only, discarded: package versions follow the pinned base image's Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
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
# Non-editable install: the final stage needs the venv only, not /src.
# DL3013: this installs the repository itself; its dependency ranges live in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[all]" \
 && python -c "import apache_beam, tensorflow, rasterio; print(apache_beam.__version__)" \
 && tessera --help > /dev/null

FROM python:3.11.13-slim-bookworm AS final
# checkov:skip=CKV_DOCKER_2: One image, many roles (Beam SDK harness, trigger, products, Jobs); Kubernetes probes in helm/tessera check each role's own endpoint, Docker HEALTHCHECK is ignored there.
LABEL org.opencontainers.image.title="tessera-worker" \
      org.opencontainers.image.source="https://github.com/tessera-eo/tessera" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 tessera \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin tessera
COPY --from=beam /opt/apache/beam /opt/apache/beam
COPY --from=build /opt/venv /opt/venv
COPY --from=web /web/node_modules/leaflet /opt/web/node_modules/leaflet
ENV VIRTUAL_ENV=/opt/venv \
    PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    CPL_TMPDIR=/tmp \
    TESSERA_PRODUCTS_NODE_MODULES=/opt/web/node_modules
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080
# Dataflow starts the SDK harness through the boot launcher; Kubernetes pods override
# the command with `tessera ...` (see helm/tessera).
ENTRYPOINT ["/opt/apache/beam/boot"]
