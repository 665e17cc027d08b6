"""Webhook endpoints through the API: what is checked before one is stored (the URL, where it leads, the event
types), and the answers for endpoints and deliveries that are not the caller's project's (404)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
from sqlalchemy.orm import Session

from api.errors import ApiError, not_found
from jobcore.models import WebhookDelivery, WebhookEndpoint
from jobcore.settings import ServiceSettings
from jobcore.webhooks import endpoints, urls
from jobcore.webhooks.outbox import EVENT_TYPES

URL_PARAM = "url"
RESOLVE_TIMEOUT_S = 10.0


def check_url_now(settings: ServiceSettings, url: str, resolver: urls.Resolver = urls.resolve) -> None:
    """422 ``webhook_url_not_allowed`` naming ``url`` when webhooks may not go there (not http(s), does not resolve,
    resolves to an address that is neither public nor allowed). Blocking: DNS."""
    try:
        urls.check(url, urls.parse_allowed(settings.webhook_allowed_hosts), resolver)
    except urls.UrlRefused as exc:
        raise ApiError(422, "webhook_url_not_allowed", f"url: {exc}", URL_PARAM) from None


async def check_url(settings: ServiceSettings, url: str) -> None:
    """:func:`check_url_now` in a worker thread, for at most :data:`RESOLVE_TIMEOUT_S`."""
    try:
        with anyio.fail_after(RESOLVE_TIMEOUT_S):
            await anyio.to_thread.run_sync(check_url_now, settings, url, abandon_on_cancel=True)
    except TimeoutError:
        raise ApiError(
            422, "webhook_url_not_allowed", "url: its host did not resolve in time; check the name", URL_PARAM
        ) from None


def event_types(requested: Sequence[str] | None) -> list[str]:
    """The subscribed types, in the documented order, each once; every type when none is named."""
    if requested is None:
        return list(EVENT_TYPES)
    if not requested:
        raise ApiError(
            422, "invalid_parameter", "event_types: name at least one, or leave it out for all", "event_types"
        )
    return [t for t in EVENT_TYPES if t in set(requested)]


def create(
    session: Session,
    settings: ServiceSettings,
    project: str,
    *,
    url: str,
    types: Sequence[str] | None,
    description: str | None,
    enabled: bool,
    by: str | None,
) -> tuple[WebhookEndpoint, str]:
    if endpoints.count(session, project) >= endpoints.MAX_ENDPOINTS_PER_PROJECT:
        raise ApiError(
            409,
            "too_many_webhooks",
            f"project {project!r} has {endpoints.MAX_ENDPOINTS_PER_PROJECT} webhook endpoints, the most it may have: "
            "delete one it no longer needs (DELETE /v1/webhooks/{webhook_id}), or subscribe an existing one to more "
            "event types",
        )
    return endpoints.create(
        session,
        settings,
        project,
        url=url,
        event_types=event_types(types),
        description=description,
        enabled=enabled,
        by=by,
    )


def get(session: Session, project: str, endpoint_id: str, *, for_update: bool = False) -> WebhookEndpoint:
    endpoint = endpoints.get(session, project, endpoint_id, for_update=for_update)
    if endpoint is None:
        raise not_found("webhook", endpoint_id)
    return endpoint


def update(session: Session, project: str, endpoint_id: str, changes: dict[str, Any]) -> WebhookEndpoint:
    endpoint = get(session, project, endpoint_id, for_update=True)
    if "event_types" in changes:
        changes["event_types"] = event_types(changes["event_types"])
    return endpoints.update_endpoint(session, endpoint, changes)


def get_delivery(session: Session, project: str, endpoint_id: str, delivery_id: str) -> WebhookDelivery:
    get(session, project, endpoint_id)
    delivery = endpoints.get_delivery(session, endpoint_id, delivery_id)
    if delivery is None:
        raise not_found("delivery", delivery_id)
    return delivery


def list_deliveries(
    session: Session,
    project: str,
    endpoint_id: str,
    *,
    status: str | None,
    job_id: str | None,
    event_type: str | None,
    after: str | None,
    limit: int,
) -> tuple[list[WebhookDelivery], str | None]:
    """A page of the endpoint's deliveries, newest first, and the cursor of the next page (None on the last)."""
    get(session, project, endpoint_id)
    cursor = None
    if after is not None:
        last = endpoints.get_delivery(session, endpoint_id, after)
        if last is None:
            raise ApiError(422, "invalid_cursor", f"after: no delivery {after} to continue from", "after")
        cursor = last.seq
    found = endpoints.list_deliveries(
        session, endpoint_id, status=status, job_id=job_id, event_type=event_type, after=cursor, limit=limit + 1
    )
    return found[:limit], (found[limit - 1].id if len(found) > limit else None)
