#!/usr/bin/env bash
# Entrypoint of the worker images: a Celery worker for the queue $FINETUNING_DEFAULT_QUEUE (default gpu) that runs
# $FINETUNING_WORKER_CONCURRENCY jobs at once (default 1; the service settings apply). Options given to the container
# (e.g. --concurrency 2, --hostname gpu-a@%h) go to `celery worker`; a command (e.g. bash) runs instead of it.
# --task-events: Flower shows the tasks. No gossip or mingle: workers need nothing from each other.
set -euo pipefail

if [[ $# -gt 0 && "$1" != -* ]]; then
  exec "$@"
fi

exec celery -A worker.celery_app worker \
  --queues "${FINETUNING_DEFAULT_QUEUE:-gpu}" \
  --loglevel "${CELERY_LOG_LEVEL:-INFO}" \
  --task-events \
  --without-gossip \
  --without-mingle \
  "$@"
