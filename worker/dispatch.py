"""Enqueue a job for the workers: the API calls :func:`enqueue_job` after committing the job's row.

Light to import (Celery and the settings only: no torch, no engine), so the API's start-up stays fast. The message
carries only the job id; the worker reads everything else from the database when it claims the job.
"""

from __future__ import annotations

import threading

from celery import Celery

from jobcore.settings import ServiceSettings

TASK_NAME = "jobs.run"

_producers: dict[tuple[str, str], Celery] = {}
_lock = threading.Lock()


def _producer(settings: ServiceSettings) -> Celery:
    # one app (and so one broker connection pool) per broker, reused by every request
    key = (settings.broker_url, settings.default_queue)
    with _lock:
        app = _producers.get(key)
        if app is None:
            from worker.celery_app import create_celery

            app = _producers[key] = create_celery(settings)
        return app


def enqueue_job(settings: ServiceSettings, job_id: str, queue: str, *, countdown: float | None = None) -> None:
    """Send ``jobs.run(job_id)`` to ``queue``, to run no sooner than ``countdown`` seconds from now (a back-off).
    Sending twice is harmless: the worker's claim runs a job once."""
    _producer(settings).send_task(TASK_NAME, args=[job_id], queue=queue, countdown=countdown or None)
