"""A project's webhook endpoints and their delivery log, as the API manages them: plain functions over a session, every
query filtered by the project (another project's endpoint is simply not found). A signing secret is returned only by
:func:`create` and :func:`rotate_secret`, once; it is stored encrypted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from jobcore.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from jobcore.settings import ServiceSettings
from jobcore.webhooks import outbox, signing

MAX_ENDPOINTS_PER_PROJECT = 50


def _now() -> datetime:
    return datetime.now(UTC)


def count(session: Session, project: str) -> int:
    return int(session.scalar(select(func.count()).where(WebhookEndpoint.project == project)) or 0)


def create(
    session: Session,
    settings: ServiceSettings,
    project: str,
    *,
    url: str,
    event_types: Sequence[str],
    description: str | None,
    enabled: bool,
    by: str | None,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (``whsec_...``), which is never shown again."""
    secret = signing.new_secret()
    now = _now()
    endpoint = WebhookEndpoint(
        project=project,
        url=url,
        description=description,
        event_types=list(event_types),
        enabled=enabled,
        secret_ciphertext=signing.encrypt(settings, secret),
        created_at=now,
        updated_at=now,
        created_by=by,
    )
    session.add(endpoint)
    session.flush()
    return endpoint, secret


def get(session: Session, project: str, endpoint_id: str, *, for_update: bool = False) -> WebhookEndpoint | None:
    query = select(WebhookEndpoint).where(WebhookEndpoint.project == project, WebhookEndpoint.id == endpoint_id)
    return session.scalar(query.with_for_update() if for_update else query)


def list_all(session: Session, project: str) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).where(WebhookEndpoint.project == project)
    return list(session.scalars(query.order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)))


def update_endpoint(session: Session, endpoint: WebhookEndpoint, changes: dict[str, Any]) -> WebhookEndpoint:
    """Set ``changes`` (url, event_types, description, enabled). Deliveries already queued keep their message and
    go to the endpoint's URL of the moment they are sent."""
    for name, value in changes.items():
        setattr(endpoint, name, list(value) if name == "event_types" else value)
    endpoint.updated_at = _now()
    session.flush()
    return endpoint


def delete(session: Session, endpoint: WebhookEndpoint) -> None:
    """The endpoint, its deliveries (pending ones are not sent) and their log."""
    session.delete(endpoint)
    session.flush()


def rotate_secret(
    session: Session, settings: ServiceSettings, endpoint: WebhookEndpoint, keep_previous_seconds: float
) -> str:
    """A new signing secret (returned, never shown again); the previous one also signs for ``keep_previous_seconds``
    (each request then carries both signatures), so receivers can switch without missing a webhook."""
    secret = signing.new_secret()
    now = _now()
    if keep_previous_seconds > 0:
        endpoint.previous_secret_ciphertext = endpoint.secret_ciphertext
        endpoint.previous_secret_expires_at = now + timedelta(seconds=keep_previous_seconds)
    else:
        endpoint.previous_secret_ciphertext = None
        endpoint.previous_secret_expires_at = None
    endpoint.secret_ciphertext = signing.encrypt(settings, secret)
    endpoint.updated_at = now
    session.flush()
    return secret


def queue_ping(session: Session, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """A ``webhook.test`` message to this endpoint, sent like any other (signed, retried, logged)."""
    row = outbox.delivery_row(endpoint.id, outbox.TEST_EVENT, outbox.ping_message(endpoint.id, endpoint.project), None)
    session.execute(insert(WebhookDelivery), [row])
    found = get_delivery(session, endpoint.id, row["id"])
    assert found is not None
    return found


# -- the delivery log --------------------------------------------------------------------------------------------------


def get_delivery(session: Session, endpoint_id: str, delivery_id: str) -> WebhookDelivery | None:
    return session.scalar(
        select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.id == delivery_id)
    )


def list_deliveries(
    session: Session,
    endpoint_id: str,
    *,
    status: str | None = None,
    job_id: str | None = None,
    event_type: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> list[WebhookDelivery]:
    """Newest first; ``after`` is the ``seq`` of the last delivery of the previous page."""
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    if job_id is not None:
        query = query.where(WebhookDelivery.job_id == job_id)
    if event_type is not None:
        query = query.where(WebhookDelivery.event_type == event_type)
    if after is not None:
        query = query.where(WebhookDelivery.seq < after)
    return list(session.scalars(query.order_by(WebhookDelivery.seq.desc()).limit(limit)))


def attempts_of(session: Session, seqs: Sequence[int]) -> dict[int, list[WebhookAttempt]]:
    """The attempts of each delivery, oldest first."""
    found: dict[int, list[WebhookAttempt]] = {seq: [] for seq in seqs}
    if not seqs:
        return found
    query = select(WebhookAttempt).where(WebhookAttempt.delivery_seq.in_(list(seqs))).order_by(WebhookAttempt.id)
    for attempt in session.scalars(query):
        found[attempt.delivery_seq].append(attempt)
    return found


def redeliver(session: Session, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send the delivery again (the same message and ``webhook-id``), now, with a new retry window: a failed one is
    pending again, a delivered one is sent once more, a pending one stops waiting for its back-off. It still waits
    for older pending deliveries of its job to the endpoint."""
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.seq == delivery.seq)
        .values(
            status=outbox.PENDING,
            failures=0,
            next_attempt_at=None,
            give_up_at=None,
            delivered_at=None,
            # an attempt in flight no longer decides the outcome (its sender's token is void)
            leased_until=None,
            lease_token=None,
        )
        .execution_options(synchronize_session=False)
    )
    session.refresh(delivery)
    return delivery


def pending_counts(session: Session, endpoint_ids: Sequence[str]) -> dict[str, int]:
    """How many deliveries wait for each endpoint."""
    if not endpoint_ids:
        return {}
    query = (
        select(WebhookDelivery.endpoint_id, func.count())
        .where(WebhookDelivery.endpoint_id.in_(list(endpoint_ids)), WebhookDelivery.status == outbox.PENDING)
        .group_by(WebhookDelivery.endpoint_id)
    )
    return {endpoint_id: int(n) for endpoint_id, n in session.execute(query)}
