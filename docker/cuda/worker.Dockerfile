# syntax=docker/dockerfile:1
#
# CUDA worker: the project's code on top of the CUDA base image (docker/cuda/base.Dockerfile), which holds every heavy
# dependency, so a code change rebuilds in seconds. Runs a Celery worker for the queue $FINETUNING_DEFAULT_QUEUE
# (default gpu) that runs the engine's commands as subprocesses.
#
# From the repository root (docker/build-and-push.sh does this):
#   docker build -f docker/cuda/worker.Dockerfile \
#     --build-arg BASE_IMAGE=REGISTRY/silogen-finetuning-cuda-base:TAG -t REGISTRY/silogen-finetuning-cuda-worker:TAG .
#
# BASE_IMAGE has no default: the worker must sit on the base built from the same pyproject.toml and constraints.txt.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}

LABEL org.opencontainers.image.title="silogen-finetuning-cuda-worker" \
      org.opencontainers.image.description="Silogen finetuning: Celery worker that runs finetuning jobs on CUDA GPUs" \
      org.opencontainers.image.vendor="Silogen" \
      ai.silogen.finetuning.platform="cuda"

# root only to install: the code and the virtualenv stay owned by root, read-only to the user the worker runs as
# hadolint ignore=DL3066
USER root
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY finetuning ./finetuning
COPY jobcore ./jobcore
COPY api ./api
COPY worker ./worker
COPY migrations ./migrations
COPY docker/requirements.py ./docker/requirements.py
COPY --chmod=755 docker/worker-entrypoint.sh /usr/local/bin/finetuning-worker

# Editable (-e), with no dependencies (the base has them): the code stays in /app, where api/admin.py finds
# alembic.ini and migrations/ next to its package. Then fail the build if the base lacks a dependency that
# pyproject.toml now declares, rather than a job at run time.
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . \
 && python docker/requirements.py --check engine service ray \
 && python -c "import worker.tasks, worker.runner, finetuning.config"

# Back to the base image's user. The ids are numeric (the base's ENV APP_UID/APP_GID); hadolint cannot see that
# from this file alone, hence the pragma.
# hadolint ignore=DL3066
USER ${APP_UID}:${APP_GID}
ENV FINETUNING_DEFAULT_QUEUE=gpu

# What the image is, recorded in each run's reproducibility manifest (docs/manifest.md): docker/build-and-push.sh
# passes the image's name and the commit it was built from. An image cannot hold its own digest: a deployment that
# pulls it by digest sets FINETUNING_IMAGE_DIGEST=sha256:... in the worker's environment.
ARG FINETUNING_IMAGE=""
ARG FINETUNING_IMAGE_REVISION=""
ENV FINETUNING_IMAGE=${FINETUNING_IMAGE} \
    FINETUNING_IMAGE_REVISION=${FINETUNING_IMAGE_REVISION}

ENTRYPOINT ["tini", "--", "finetuning-worker"]
# The worker answers a ping through the broker (its main process does, also while a job runs in its pool).
HEALTHCHECK --interval=60s --timeout=30s --start-period=60s --retries=3 \
  CMD ["/bin/sh", "-c", "celery -A worker.celery_app inspect ping --destination \"celery@${HOSTNAME}\" --timeout 10 > /dev/null"]
