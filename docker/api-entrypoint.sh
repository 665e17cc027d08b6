#!/usr/bin/env bash
# Entrypoint of the API image: migrate the database to the newest schema (unless MIGRATE_ON_START=0), then serve the
# API with uvicorn on port 8000 ($API_WORKERS processes, default 2). Options given to the container go to uvicorn; a
# command (e.g. finetuning-admin token list) runs instead.
set -euo pipefail

if [[ $# -gt 0 && "$1" != -* ]]; then
  exec "$@"
fi

if [[ "${MIGRATE_ON_START:-1}" != "0" ]]; then
  finetuning-admin db upgrade
fi

exec uvicorn --factory api.main:create_app \
  --host 0.0.0.0 \
  --port 8000 \
  --workers "${API_WORKERS:-2}" \
  --timeout-graceful-shutdown "${API_GRACEFUL_SHUTDOWN_SECONDS:-10}" \
  --no-server-header \
  "$@"
