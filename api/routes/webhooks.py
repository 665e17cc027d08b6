"""Webhook endpoints of a project: register a URL for job events (signed the Standard Webhooks way, its secret shown
once), read and change it, and follow its delivery log; redeliver a message, send a test one, rotate the secret."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api import webhook_service
from api.auth import CallerDep
from api.deps import DatabaseDep, SettingsDep
from api.errors import error_responses
from jobcore.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from jobcore.webhooks import endpoints
from jobcore.webhooks.outbox import EVENT_TYPES, WebhookEventType

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

WebhookId = Annotated[str, Path(max_length=36, description="The webhook endpoint's id.")]
DeliveryId = Annotated[str, Path(max_length=40, description="The delivery's id: its `webhook-id` header.")]
DEFAULT_KEEP_PREVIOUS_S = 24 * 3600
MAX_KEEP_PREVIOUS_S = 7 * 24 * 3600


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        max_length=2048,
        description="The http(s) URL that receives the events (POST, JSON). Its host must resolve to public addresses "
        "unless the service allows it (FINETUNING_WEBHOOK_ALLOWED_HOSTS); redirects are not followed.",
        examples=["https://portal.example.com/hooks/finetuning"],
    )
    event_types: list[WebhookEventType] | None = Field(
        default=None, description="The events to receive; default: all of them."
    )
    description: str | None = Field(default=None, max_length=500, description="A note for people.")
    enabled: bool = Field(
        default=True,
        description="A disabled endpoint is sent nothing: events meanwhile are not queued for it, pending ones wait.",
    )


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2048, description="A new URL (checked like at registration).")
    event_types: list[WebhookEventType] | None = Field(default=None, description="Replaces the subscribed events.")
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = Field(
        default=None,
        description="false pauses the endpoint (new events are not queued, pending ones wait); true resumes it.",
    )


class RotateSecret(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep_previous_seconds: int = Field(
        default=DEFAULT_KEEP_PREVIOUS_S,
        ge=0,
        le=MAX_KEEP_PREVIOUS_S,
        description="How long the previous secret still signs (every request then carries both signatures), so "
        "receivers can switch without missing a webhook; 0 revokes it at once.",
    )


class WebhookRead(BaseModel):
    id: str
    url: str
    event_types: list[WebhookEventType]
    description: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime
    created_by: str | None = Field(description="The API token (its name and first characters) that registered it.")
    previous_secret_expires_at: datetime | None = Field(
        description="After a rotation, until when the previous secret also signs."
    )
    pending_deliveries: int = Field(description="Deliveries waiting to be sent (or retried).")


class WebhookWithSecret(WebhookRead):
    secret: str = Field(
        description="The signing secret (`whsec_` + base64): shown here once, never again. Verify each request's "
        "`webhook-signature` with it (Standard Webhooks)."
    )


class WebhookList(BaseModel):
    data: list[WebhookRead]


class WebhookAttemptRead(BaseModel):
    attempted_at: datetime
    status_code: int | None = Field(description="The receiver's HTTP status; null when no answer came.")
    error: str | None = Field(description="Why the attempt failed (a status that is not 2xx, refused, timed out).")
    duration_ms: int
    response: str | None = Field(description="The first bytes of the answer's body.")


class WebhookDeliveryRead(BaseModel):
    id: str = Field(description="The message id, sent as `webhook-id` on every attempt (deduplicate on it).")
    event_type: str
    job_id: str | None
    status: str = Field(description="pending (being sent or waiting for a retry), succeeded or failed (given up).")
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="When a pending delivery is tried next (null: at once).")
    give_up_at: datetime | None = Field(description="Retried until then (set by the first attempt).")
    delivered_at: datetime | None
    payload: dict[str, Any] = Field(description="The message, as sent.")
    attempts: list[WebhookAttemptRead] = Field(description="Every attempt, oldest first.")


class WebhookDeliveryPage(BaseModel):
    data: list[WebhookDeliveryRead]
    next: str | None = Field(description="Pass as `after` for the next page; null on the last page.")


def _read(endpoint: WebhookEndpoint, pending: int) -> WebhookRead:
    return WebhookRead(
        id=endpoint.id,
        url=endpoint.url,
        event_types=[WebhookEventType(t) for t in endpoint.event_types if t in EVENT_TYPES],
        description=endpoint.description,
        enabled=endpoint.enabled,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
        created_by=endpoint.created_by,
        previous_secret_expires_at=endpoint.previous_secret_expires_at,
        pending_deliveries=pending,
    )


def _with_secret(endpoint: WebhookEndpoint, pending: int, secret: str) -> WebhookWithSecret:
    return WebhookWithSecret(**_read(endpoint, pending).model_dump(), secret=secret)


def _pending(session: Session, endpoint: WebhookEndpoint) -> int:
    return endpoints.pending_counts(session, [endpoint.id]).get(endpoint.id, 0)


def _delivery(delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> WebhookDeliveryRead:
    return WebhookDeliveryRead(
        id=delivery.id,
        event_type=delivery.event_type,
        job_id=delivery.job_id,
        status=delivery.status,
        created_at=delivery.created_at,
        next_attempt_at=delivery.next_attempt_at,
        give_up_at=delivery.give_up_at,
        delivered_at=delivery.delivered_at,
        payload=json.loads(delivery.body),
        attempts=[
            WebhookAttemptRead(
                attempted_at=a.attempted_at,
                status_code=a.status_code,
                error=a.error,
                duration_ms=a.duration_ms,
                response=a.response,
            )
            for a in attempts
        ],
    )


def _delivery_read(session: Session, delivery: WebhookDelivery) -> WebhookDeliveryRead:
    return _delivery(delivery, endpoints.attempts_of(session, [delivery.seq])[delivery.seq])


@router.post(
    "",
    status_code=201,
    name="create_webhook",
    summary="Register a webhook endpoint",
    responses=error_responses(400, 401, 409, 422),
)
async def create_webhook(
    body: WebhookCreate, database: DatabaseDep, caller: CallerDep, settings: SettingsDep
) -> WebhookWithSecret:
    """The URL receives the project's job events, signed with the secret in this answer (shown once). A URL that
    webhooks may not go to is a 422 naming `url`."""
    await database.run(caller.project)  # who asks, before the URL is looked up
    await webhook_service.check_url(settings, body.url)

    def work(session: Session) -> WebhookWithSecret:
        project = caller.project(session)
        endpoint, secret = webhook_service.create(
            session,
            settings,
            project,
            url=body.url,
            types=body.event_types,
            description=body.description,
            enabled=body.enabled,
            by=caller.label(session),
        )
        return _with_secret(endpoint, 0, secret)

    return await database.run(work)


@router.get("", name="list_webhooks", summary="List webhook endpoints", responses=error_responses(401))
async def list_webhooks(database: DatabaseDep, caller: CallerDep) -> WebhookList:
    """The project's endpoints (never their secrets)."""

    def work(session: Session) -> WebhookList:
        found = endpoints.list_all(session, caller.project(session))
        pending = endpoints.pending_counts(session, [e.id for e in found])
        return WebhookList(data=[_read(e, pending.get(e.id, 0)) for e in found])

    return await database.run(work)


@router.get("/{webhook_id}", name="get_webhook", summary="Get a webhook endpoint", responses=error_responses(401, 404))
async def get_webhook(webhook_id: WebhookId, database: DatabaseDep, caller: CallerDep) -> WebhookRead:
    """The endpoint, never its secret."""

    def work(session: Session) -> WebhookRead:
        endpoint = webhook_service.get(session, caller.project(session), webhook_id)
        return _read(endpoint, _pending(session, endpoint))

    return await database.run(work)


@router.patch(
    "/{webhook_id}",
    name="update_webhook",
    summary="Change a webhook endpoint",
    responses=error_responses(400, 401, 404, 422),
)
async def update_webhook(
    webhook_id: WebhookId, body: WebhookUpdate, database: DatabaseDep, caller: CallerDep, settings: SettingsDep
) -> WebhookRead:
    """Change the URL, the events, the description, or pause and resume deliveries; fields left out stay."""
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    for name in ("url", "event_types", "enabled"):
        if name in changes and changes[name] is None:
            changes.pop(name)  # null for these means "unchanged"; a description can be cleared
    if "url" in changes:
        # the endpoint must be the caller's before its new URL is looked up
        await database.run(lambda session: webhook_service.get(session, caller.project(session), webhook_id))
        await webhook_service.check_url(settings, changes["url"])

    def work(session: Session) -> WebhookRead:
        endpoint = webhook_service.update(session, caller.project(session), webhook_id, changes)
        return _read(endpoint, _pending(session, endpoint))

    return await database.run(work)


@router.delete(
    "/{webhook_id}",
    status_code=204,
    name="delete_webhook",
    summary="Delete a webhook endpoint",
    responses=error_responses(401, 404),
)
async def delete_webhook(webhook_id: WebhookId, database: DatabaseDep, caller: CallerDep) -> Response:
    """The endpoint and its delivery log; pending deliveries are not sent."""

    def work(session: Session) -> None:
        endpoints.delete(session, webhook_service.get(session, caller.project(session), webhook_id, for_update=True))

    await database.run(work)
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/rotate-secret",
    name="rotate_webhook_secret",
    summary="Rotate a webhook endpoint's signing secret",
    responses=error_responses(400, 401, 404, 422),
)
async def rotate_webhook_secret(
    webhook_id: WebhookId,
    database: DatabaseDep,
    caller: CallerDep,
    settings: SettingsDep,
    body: RotateSecret | None = None,
) -> WebhookWithSecret:
    """A new secret, shown once; the previous one keeps signing for `keep_previous_seconds` (default a day)."""
    keep = (body or RotateSecret()).keep_previous_seconds

    def work(session: Session) -> WebhookWithSecret:
        endpoint = webhook_service.get(session, caller.project(session), webhook_id, for_update=True)
        secret = endpoints.rotate_secret(session, settings, endpoint, keep)
        return _with_secret(endpoint, _pending(session, endpoint), secret)

    return await database.run(work)


@router.post(
    "/{webhook_id}/test",
    status_code=202,
    name="test_webhook",
    summary="Send a test message",
    responses=error_responses(401, 404),
)
async def test_webhook(webhook_id: WebhookId, database: DatabaseDep, caller: CallerDep) -> WebhookDeliveryRead:
    """Queues a `webhook.test` message to the endpoint, signed, retried and logged like any other."""

    def work(session: Session) -> WebhookDeliveryRead:
        endpoint = webhook_service.get(session, caller.project(session), webhook_id)
        return _delivery_read(session, endpoints.queue_ping(session, endpoint))

    return await database.run(work)


@router.get(
    "/{webhook_id}/deliveries",
    name="list_webhook_deliveries",
    summary="The delivery log of a webhook endpoint",
    responses=error_responses(401, 404),
)
async def list_webhook_deliveries(
    webhook_id: WebhookId,
    database: DatabaseDep,
    caller: CallerDep,
    status: Annotated[str | None, Query(pattern="^(pending|succeeded|failed)$")] = None,
    job_id: Annotated[str | None, Query(max_length=36, description="Only this job's deliveries.")] = None,
    event_type: Annotated[str | None, Query(max_length=64)] = None,
    after: Annotated[str | None, Query(max_length=40, description="The `next` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> WebhookDeliveryPage:
    """Newest first: each message with its status and every attempt (time, status code or error, duration, the
    first bytes of the answer)."""

    def work(session: Session) -> WebhookDeliveryPage:
        found, next_after = webhook_service.list_deliveries(
            session,
            caller.project(session),
            webhook_id,
            status=status,
            job_id=job_id,
            event_type=event_type,
            after=after,
            limit=limit,
        )
        attempts = endpoints.attempts_of(session, [d.seq for d in found])
        return WebhookDeliveryPage(data=[_delivery(d, attempts[d.seq]) for d in found], next=next_after)

    return await database.run(work)


@router.get(
    "/{webhook_id}/deliveries/{delivery_id}",
    name="get_webhook_delivery",
    summary="One delivery and its attempts",
    responses=error_responses(401, 404),
)
async def get_webhook_delivery(
    webhook_id: WebhookId, delivery_id: DeliveryId, database: DatabaseDep, caller: CallerDep
) -> WebhookDeliveryRead:
    def work(session: Session) -> WebhookDeliveryRead:
        delivery = webhook_service.get_delivery(session, caller.project(session), webhook_id, delivery_id)
        return _delivery_read(session, delivery)

    return await database.run(work)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    name="redeliver_webhook",
    summary="Send a delivery again",
    responses=error_responses(401, 404),
)
async def redeliver_webhook(
    webhook_id: WebhookId, delivery_id: DeliveryId, database: DatabaseDep, caller: CallerDep
) -> WebhookDeliveryRead:
    """The same message (the same `webhook-id`) is sent again now, with a new retry window; it still waits for
    older pending messages of its job to this endpoint."""

    def work(session: Session) -> WebhookDeliveryRead:
        delivery = webhook_service.get_delivery(session, caller.project(session), webhook_id, delivery_id)
        return _delivery_read(session, endpoints.redeliver(session, delivery))

    return await database.run(work)
