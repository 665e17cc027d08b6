"""The ``jobs.run`` task. Registered on an app by :func:`register_tasks`, with the settings the app was built from;
the runner (and with it the engine's config schema) is imported only when a task runs, so building an app to send
tasks stays cheap."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from sqlalchemy.exc import InterfaceError, OperationalError

from jobcore.settings import ServiceSettings


def register_tasks(app: Celery, settings: ServiceSettings) -> None:
    """Register ``jobs.run(job_id)`` on ``app``."""

    # The database unreachable at claim time: send the message again later rather than acknowledge it and leave the
    # job queued with no message. Once claimed, the runner handles database outages itself (within its lease).
    @app.task(
        name="jobs.run",
        bind=True,
        autoretry_for=(OperationalError, InterfaceError),
        retry_backoff=2,
        retry_backoff_max=60,
        max_retries=None,
    )
    def run(task: Any, job_id: str) -> str | None:
        """Claim and run a job; a message for a job that is not claimable (a redelivery) returns quietly."""
        from worker.runner import run_job

        # the pool process' pid tells apart the jobs one Celery worker runs at once
        return run_job(settings, job_id, worker_name=f"{task.request.hostname}:{os.getpid()}")
