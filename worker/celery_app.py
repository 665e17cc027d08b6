"""The Celery app, built from settings; ``celery -A worker.celery_app worker`` finds its ``app``.

Long jobs and the broker: a job can run for hours, so the message is acknowledged only when the task ends
(``task_acks_late``), a worker takes one message at a time (``worker_prefetch_multiplier=1``: a busy worker must not
hold a second long job) and Redis' visibility timeout (24 h) is longer than almost any job, so Redis does not hand a
running job's message to another worker. When it does, the database claim (a lease with a fencing token) makes the
second delivery exit without running anything: the database lease, not the broker, decides who runs a job and
notices lost workers.

Shutdown: a worker sent SIGTERM (a warm shutdown) does not wait for its running job to finish: the job saves a
checkpoint, goes back to the queue and the worker exits within ``shutdown_grace_seconds`` (:mod:`worker.shutdown`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery

from jobcore.settings import ServiceSettings, get_settings

# Transports with a visibility timeout (unacknowledged messages come back after it).
_VISIBILITY_TRANSPORTS = ("redis", "rediss", "sentinel", "sqs")


def broker_transport_options(broker_url: str, visibility_timeout_s: int) -> dict[str, Any]:
    """Transport options for ``broker_url``, with ``visibility_timeout_s`` (by default 24 h, longer than almost any
    job; a longer job is still safe: its redelivered copy finds the job claimed and exits). Kombu's SQLAlchemy
    transport (``sqla+sqlite:///...``) passes its options to ``create_engine``, which rejects unknown keywords, and
    has no visibility timeout: it gets none."""
    scheme = broker_url.split("://", 1)[0].lower()
    if scheme in _VISIBILITY_TRANSPORTS:
        return {"visibility_timeout": visibility_timeout_s}
    return {}


def _ensure_broker_folder(broker_url: str) -> None:
    # SQLite creates its file but not the folder: a worker started before the API must not fail on it
    prefix = "sqla+sqlite:///"
    path = broker_url[len(prefix) :] if broker_url.startswith(prefix) else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def create_celery(settings: ServiceSettings) -> Celery:
    """A Celery app for ``settings`` with the ``jobs.run`` task registered; no result backend (Postgres holds every
    outcome)."""
    _ensure_broker_folder(settings.broker_url)
    app = Celery("finetuning", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        broker_connection_retry_on_startup=True,
        broker_transport_options=broker_transport_options(
            settings.broker_url, settings.broker_visibility_timeout_seconds
        ),
        task_ignore_result=True,
        task_acks_late=True,
        # a task whose pool process died (OOM killer) goes back to the queue; the lease decides whether it runs again
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # back on the broker within about a second of its return, not after kombu's back-off of up to 30 s
        worker_consumer="worker.consumer:QuickReconnectConsumer",
        worker_concurrency=settings.worker_concurrency,
        task_default_queue=settings.default_queue,
        task_serializer="json",
        accept_content=["json"],
        # a broker connection loss must not abandon a running job: its message may come back, the claim rejects it
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    from worker.tasks import register_tasks

    register_tasks(app, settings)
    return app


app: Celery  # declared only: __getattr__ below builds it on first access


def __getattr__(name: str) -> Celery:
    """``app``, the entry point of ``celery -A worker.celery_app worker``: built from the environment's settings on
    first access rather than at import, so importing ``create_celery`` (the API's dispatch, tests) neither reads the
    environment nor fills ``get_settings``' cache early."""
    if name == "app":
        global app
        from worker.observability import install

        settings = get_settings()
        app = create_celery(settings)
        install(app, settings)  # the worker's JSON logs and metrics endpoint, as its settings ask
        from worker.recovery import install_recovery

        install_recovery(settings)  # lost workers' jobs and vanished messages are found and sent again
        from worker.webhooks import install_webhook_sender

        install_webhook_sender(settings)  # job events go out to the projects' webhook endpoints
        from worker.shutdown import install_shutdown

        install_shutdown()  # a worker asked to stop hands its running job back (with a checkpoint) and exits
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
