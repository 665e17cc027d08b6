"""The environment an engine run gets from the service: the job's identity and tracking server, the project secrets
it refers to, and (for a process on this machine) the worker's own environment without the service's settings."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from finetuning.contract import JOB_ATTEMPT_ENV, JOB_ID_ENV, SECRET_ENV_PREFIX, STAGING_DIR_ENV
from finetuning.redaction import references, remember
from jobcore.settings import ServiceSettings
from worker.store import Claim

# The service's own settings (database and broker URLs among them) are not the engine's business: user-supplied code
# runs in the child (trust_remote_code, chat templates), so they are not passed on.
_SERVICE_ENV = {f"FINETUNING_{name}".upper() for name in ServiceSettings.model_fields}


class MissingSecret(Exception):
    """A secret the job refers to was deleted after the job was submitted."""


def _job(settings: ServiceSettings, claim: Claim) -> dict[str, str]:
    """The job and this run of it (the engine tags its events and MLflow run with them), and the tracking server."""
    env = {JOB_ID_ENV: claim.job_id, JOB_ATTEMPT_ENV: str(claim.attempt), "PYTHONUNBUFFERED": "1"}
    config = claim.resolved.get("config") or {}
    if settings.mlflow_tracking_uri and not config.get("tracking"):
        env["MLFLOW_TRACKING_URI"] = settings.mlflow_tracking_uri
    return env


def for_process(settings: ServiceSettings, claim: Claim, job_dir: Path) -> dict[str, str]:
    """An engine process on this machine: the worker's environment (without the service's settings) and the job's."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in _SERVICE_ENV}
    env.update(_job(settings, claim))  # PYTHONUNBUFFERED: lines arrive as they are printed, not when a buffer fills
    # outputs bound for a bucket are written in the job's folder first: a later run of the job on this machine
    # finds what was not uploaded yet, and the folder goes when the job is done
    env[STAGING_DIR_ENV] = str(job_dir / "staging")
    if settings.engine_python is None:
        # the worker's own interpreter runs the engine: make it import the same engine code as the worker
        import finetuning

        root = str(Path(finetuning.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def for_ray(settings: ServiceSettings, claim: Claim) -> dict[str, str]:
    """A Ray job: the job's variables only (the cluster's machines have their own environment: bucket credentials,
    caches, hub access)."""
    return {
        **_job(settings, claim),
        "RAY_DEDUP_LOGS": "0",  # every rank's lines as they are; rank 0's events are unique anyway
        "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",  # print() stays print(): the engines' output reaches the log as is
    }


def secrets(resolved: dict[str, Any], fetch: Callable[[set[str]], dict[str, str]]) -> dict[str, str]:
    """The project's secrets a job refers to, as the engine's environment: ``${secrets.NAME}`` in its config as
    ``FINETUNING_SECRET__NAME``, and its ``env_secrets`` as the variables they name (``fetch`` reads the values).
    Only the engine gets them: not the queue message, not the job folder, not the events (this process masks them
    from now)."""
    config = resolved.get("config") or {}
    env_secrets = dict(references(resolved.get("env_secrets") or {}))
    referenced = {name for _, name in references(config)}
    names = referenced | set(env_secrets.values())
    if not names:
        return {}
    values = fetch(names)
    missing = sorted(names - values.keys())
    if missing:
        raise MissingSecret(
            f"the job refers to secrets that no longer exist: {', '.join(missing)}; set them (POST /v1/secrets) "
            "and resume or resubmit the job"
        )
    remember(values.values())
    env = {f"{SECRET_ENV_PREFIX}{name}": values[name] for name in referenced}
    env.update({variable: values[name] for variable, name in env_secrets.items()})
    return env
