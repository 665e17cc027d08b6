"""Which of a job's events become webhooks, and their messages. The one place deliveries are created: every code path
that stores a job's events calls :func:`enqueue` in the same transaction (:func:`jobcore.transitions.record` for the
worker's and recovery's transitions, the API's ``repository.apply`` for its own, the worker's ``append_events`` for
the engine's), so a webhook is queued exactly when its event is committed: none is lost when a process dies after the
commit, and none is sent for an event that was rolled back.

A message is built once, when its event happens, and sent as is on every attempt (``webhook-id`` stays the same):
``{"type": "job.succeeded", "timestamp": "...Z", "data": {"job_id", "project", "kind", "name", "labels", "status",
"attempt", ...}}`` with, per type, the artifacts and metrics, the error, the checkpoint or the evaluation."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from finetuning.contract import EVENTS_VERSION, EventType
from finetuning.redaction import redact
from jobcore.models import JOB_EVENT, Job, JobStatus, WebhookDelivery, WebhookEndpoint


class WebhookEventType(StrEnum):
    """The events an endpoint can subscribe to."""

    JOB_STARTED = "job.started"
    JOB_CHECKPOINT_SAVED = "job.checkpoint_saved"
    JOB_EVAL = "job.eval"
    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"


EVENT_TYPES = tuple(t.value for t in WebhookEventType)
# sent on request to one endpoint (POST /v1/webhooks/{id}/test), whatever it subscribes to
TEST_EVENT = "webhook.test"

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"

_BY_STATUS = {
    JobStatus.RUNNING.value: WebhookEventType.JOB_STARTED,
    JobStatus.SUCCEEDED.value: WebhookEventType.JOB_SUCCEEDED,
    JobStatus.FAILED.value: WebhookEventType.JOB_FAILED,
    JobStatus.CANCELLED.value: WebhookEventType.JOB_CANCELLED,
}
_BY_ENGINE_EVENT = {
    EventType.CHECKPOINT.value: WebhookEventType.JOB_CHECKPOINT_SAVED,
    EventType.EVAL.value: WebhookEventType.JOB_EVAL,
}
_JOB_COLUMNS = (
    Job.project,
    Job.kind,
    Job.name,
    Job.labels,
    Job.status,
    Job.attempt,
    Job.artifacts,
    Job.metrics,
    Job.error,
    Job.mlflow_run_id,
)


def webhook_type(kind: str, data: dict[str, Any]) -> WebhookEventType | None:
    """The webhook a stored event makes, if any: a ``job`` event by its status, an engine ``checkpoint`` or
    ``eval`` event (of the format we know)."""
    if kind == JOB_EVENT:
        return _BY_STATUS.get(str(data.get("status")))
    if kind in _BY_ENGINE_EVENT and data.get("v") == EVENTS_VERSION:
        return _BY_ENGINE_EVENT[kind]
    return None


def message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render(message: dict[str, Any]) -> str:
    """The body as sent and signed: compact strict JSON (a non-finite number becomes "NaN", "Infinity")."""
    return json.dumps(_finite(message), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def job_message(type_: WebhookEventType, job_id: str, job: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The message of a job's event ``data`` (as stored), from the job row ``job`` as the event left it."""
    body: dict[str, Any] = {
        "job_id": job_id,
        "project": job.project,
        "kind": job.kind,
        "name": job.name,
        "labels": dict(job.labels or {}),
        "status": job.status,
        "attempt": data.get("attempt", job.attempt),
    }
    artifacts = dict(job.artifacts or {})
    if type_ == WebhookEventType.JOB_SUCCEEDED:
        body.update(artifacts=artifacts, metrics=dict(job.metrics or {}), mlflow_run_id=job.mlflow_run_id)
    elif type_ == WebhookEventType.JOB_FAILED:
        body.update(error=job.error or data.get("error"), artifacts=artifacts)
    elif type_ == WebhookEventType.JOB_CANCELLED:
        body.update(checkpoint=data.get("checkpoint") or artifacts.get("checkpoint"), artifacts=artifacts)
    elif type_ == WebhookEventType.JOB_CHECKPOINT_SAVED:
        step = data.get("step")
        # ``job:<id>/checkpoint-<step>`` names it wherever a model or adapter goes (a later job, a merge)
        body.update(step=step, path=data.get("path"), checkpoint=f"job:{job_id}/checkpoint-{step}")
    elif type_ == WebhookEventType.JOB_EVAL:
        body.update(step=data.get("step"), epoch=data.get("epoch"), metrics=data.get("metrics") or {})
    timestamp = data.get("time") if isinstance(data.get("time"), str) else now_iso()
    return {"type": type_.value, "timestamp": timestamp, "data": redact(body)}


def enqueue(session: Session, job_id: str, events: Iterable[tuple[str, dict[str, Any]]]) -> int:
    """Queue the webhooks of a job's ``events`` (type, data; just stored, in order) for every enabled endpoint of the
    job's project subscribed to them, in this transaction. Returns how many deliveries were queued. Costs nothing
    for events that make no webhook, and one query when the project has no endpoint."""
    wanted = [(type_, data) for kind, data in events if (type_ := webhook_type(kind, data)) is not None]
    if not wanted:
        return 0
    endpoints = session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.event_types)
        .join(Job, Job.project == WebhookEndpoint.project)
        .where(Job.id == job_id, WebhookEndpoint.enabled.is_(True))
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    ).all()
    if not endpoints:
        return 0
    job = session.execute(select(*_JOB_COLUMNS).where(Job.id == job_id)).one()
    rows: list[dict[str, Any]] = []
    for type_, data in wanted:
        body = render(job_message(type_, job_id, job, data))
        for endpoint_id, subscribed in endpoints:
            if type_.value in (subscribed or ()):
                rows.append(delivery_row(endpoint_id, type_.value, body, job_id))
    if rows:
        session.execute(insert(WebhookDelivery), rows)
    return len(rows)


def delivery_row(endpoint_id: str, event_type: str, body: str, job_id: str | None) -> dict[str, Any]:
    """A new pending delivery, due at once."""
    return {
        "id": message_id(),
        "endpoint_id": endpoint_id,
        "job_id": job_id,
        "event_type": event_type,
        "body": body,
        "status": PENDING,
        "attempts": 0,
        "failures": 0,
        "next_attempt_at": None,  # due now, by whichever clock the sender reads
        "created_at": datetime.now(UTC),
    }


def ping_message(endpoint_id: str, project: str) -> str:
    data = {"endpoint_id": endpoint_id, "project": project}
    return render({"type": TEST_EVENT, "timestamp": now_iso(), "data": data})
