from typing import Literal

WebhookEventType = Literal[
    "job.cancelled", "job.checkpoint_saved", "job.eval", "job.failed", "job.started", "job.succeeded"
]

WEBHOOK_EVENT_TYPE_VALUES: set[WebhookEventType] = {
    "job.cancelled",
    "job.checkpoint_saved",
    "job.eval",
    "job.failed",
    "job.started",
    "job.succeeded",
}


def check_webhook_event_type(value: str) -> WebhookEventType:
    if value in WEBHOOK_EVENT_TYPE_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {WEBHOOK_EVENT_TYPE_VALUES!r}")
