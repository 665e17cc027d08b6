"""The webhook sender in a Celery worker: one thread in the worker's main process once it is ready (see
:mod:`jobcore.webhooks.sender`; the API processes run one too, and any number may run at once)."""

from __future__ import annotations

from jobcore.settings import ServiceSettings


def install_webhook_sender(settings: ServiceSettings) -> None:
    if not settings.webhook_sender:
        return
    from celery import signals

    @signals.worker_ready.connect(weak=False)
    def _start(**_: object) -> None:
        from jobcore.webhooks.sender import start_sender_thread

        start_sender_thread(settings)
