# syntax=docker/dockerfile:1
#
# API image: the FastAPI job service on a slim Python, with the service extra's dependencies only: no torch (the API
# imports the engine's config schema, which needs pydantic and pyyaml, never the engine). Migrates the database on
# start, then serves on port 8000 (docker/api-entrypoint.sh).
#
# From the repository root (docker/build-and-push.sh does this):
#   docker build -f docker/api.Dockerfile -t REGISTRY/silogen-finetuning-api:TAG .
ARG BASE_IMAGE=python:3.11.14-slim-bookworm
FROM ${BASE_IMAGE}

# The user the service runs as; the same ids as the worker images, so both read the shared volumes alike.
ARG APP_UID=10001
ARG APP_GID=10001

LABEL org.opencontainers.image.title="silogen-finetuning-api" \
      org.opencontainers.image.description="Silogen finetuning: the HTTP job service (FastAPI); no torch" \
      org.opencontainers.image.vendor="Silogen"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:${PATH} \
    FINETUNING_ARTIFACT_ROOT=/data/artifacts

RUN python -m venv "${VIRTUAL_ENV}" \
 && pip install pip==26.3 setuptools==84.2.1

# The dependencies in a layer of their own (the service extra, at the versions in constraints.txt), before the code.
COPY pyproject.toml constraints.txt docker/requirements.py /tmp/deps/
RUN python /tmp/deps/requirements.py --pyproject /tmp/deps/pyproject.toml service > /tmp/deps/requirements.txt \
 && pip install -c /tmp/deps/constraints.txt -r /tmp/deps/requirements.txt \
 && rm -rf /tmp/deps

RUN groupadd --gid "${APP_GID}" finetuning \
 && useradd --uid "${APP_UID}" --gid finetuning --create-home --shell /usr/sbin/nologin finetuning \
 && mkdir -p /data/artifacts /data/inputs \
 && chown -R finetuning:finetuning /data

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY finetuning ./finetuning
COPY jobcore ./jobcore
COPY api ./api
COPY worker ./worker
COPY migrations ./migrations
COPY docker/requirements.py ./docker/requirements.py
COPY --chmod=755 docker/api-entrypoint.sh /usr/local/bin/finetuning-api

# Editable (-e), with no dependencies: the code stays in /app, where `finetuning-admin db upgrade` finds alembic.ini
# and migrations/. Then: every service dependency is there, the app imports, and torch is not installed.
RUN pip install --no-deps --no-build-isolation -e . \
 && python docker/requirements.py --check service \
 && python -c "import api.main, api.admin, worker.dispatch" \
 && python -c "import importlib.util, sys; sys.exit('torch is installed in the API image' if importlib.util.find_spec('torch') else 0)"

# numeric, so that Kubernetes' runAsNonRoot can verify it
USER ${APP_UID}:${APP_GID}
EXPOSE 8000

ENTRYPOINT ["finetuning-api"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
