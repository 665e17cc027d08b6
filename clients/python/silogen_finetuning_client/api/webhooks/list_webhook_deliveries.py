from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_response import ErrorResponse
from ...models.webhook_delivery_page import WebhookDeliveryPage
from ...types import UNSET, Response, Unset


def _get_kwargs(
    webhook_id: str,
    *,
    status: None | str | Unset = UNSET,
    job_id: None | str | Unset = UNSET,
    event_type: None | str | Unset = UNSET,
    after: None | str | Unset = UNSET,
    limit: int | Unset = 50,
) -> dict[str, Any]:

    params: dict[str, Any] = {}

    json_status: None | str | Unset
    if isinstance(status, Unset):
        json_status = UNSET
    else:
        json_status = status
    params["status"] = json_status

    json_job_id: None | str | Unset
    if isinstance(job_id, Unset):
        json_job_id = UNSET
    else:
        json_job_id = job_id
    params["job_id"] = json_job_id

    json_event_type: None | str | Unset
    if isinstance(event_type, Unset):
        json_event_type = UNSET
    else:
        json_event_type = event_type
    params["event_type"] = json_event_type

    json_after: None | str | Unset
    if isinstance(after, Unset):
        json_after = UNSET
    else:
        json_after = after
    params["after"] = json_after

    params["limit"] = limit

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/webhooks/{webhook_id}/deliveries".format(
            webhook_id=quote(str(webhook_id), safe=""),
        ),
        "params": params,
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorResponse | WebhookDeliveryPage | None:
    if response.status_code == 200:
        response_200 = WebhookDeliveryPage.from_dict(response.json())

        return response_200

    if response.status_code == 401:
        response_401 = ErrorResponse.from_dict(response.json())

        return response_401

    if response.status_code == 404:
        response_404 = ErrorResponse.from_dict(response.json())

        return response_404

    if response.status_code == 422:
        response_422 = ErrorResponse.from_dict(response.json())

        return response_422

    if response.status_code == 500:
        response_500 = ErrorResponse.from_dict(response.json())

        return response_500

    if response.status_code == 503:
        response_503 = ErrorResponse.from_dict(response.json())

        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[ErrorResponse | WebhookDeliveryPage]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    webhook_id: str,
    *,
    client: AuthenticatedClient,
    status: None | str | Unset = UNSET,
    job_id: None | str | Unset = UNSET,
    event_type: None | str | Unset = UNSET,
    after: None | str | Unset = UNSET,
    limit: int | Unset = 50,
) -> Response[ErrorResponse | WebhookDeliveryPage]:
    """The delivery log of a webhook endpoint

     Newest first: each message with its status and every attempt (time, status code or error, duration,
    the
    first bytes of the answer).

    Args:
        webhook_id (str): The webhook endpoint's id.
        status (None | str | Unset):
        job_id (None | str | Unset): Only this job's deliveries.
        event_type (None | str | Unset):
        after (None | str | Unset): The `next` of the previous page.
        limit (int | Unset):  Default: 50.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | WebhookDeliveryPage]
    """

    kwargs = _get_kwargs(
        webhook_id=webhook_id,
        status=status,
        job_id=job_id,
        event_type=event_type,
        after=after,
        limit=limit,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    webhook_id: str,
    *,
    client: AuthenticatedClient,
    status: None | str | Unset = UNSET,
    job_id: None | str | Unset = UNSET,
    event_type: None | str | Unset = UNSET,
    after: None | str | Unset = UNSET,
    limit: int | Unset = 50,
) -> ErrorResponse | WebhookDeliveryPage | None:
    """The delivery log of a webhook endpoint

     Newest first: each message with its status and every attempt (time, status code or error, duration,
    the
    first bytes of the answer).

    Args:
        webhook_id (str): The webhook endpoint's id.
        status (None | str | Unset):
        job_id (None | str | Unset): Only this job's deliveries.
        event_type (None | str | Unset):
        after (None | str | Unset): The `next` of the previous page.
        limit (int | Unset):  Default: 50.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | WebhookDeliveryPage
    """

    return sync_detailed(
        webhook_id=webhook_id,
        client=client,
        status=status,
        job_id=job_id,
        event_type=event_type,
        after=after,
        limit=limit,
    ).parsed


async def asyncio_detailed(
    webhook_id: str,
    *,
    client: AuthenticatedClient,
    status: None | str | Unset = UNSET,
    job_id: None | str | Unset = UNSET,
    event_type: None | str | Unset = UNSET,
    after: None | str | Unset = UNSET,
    limit: int | Unset = 50,
) -> Response[ErrorResponse | WebhookDeliveryPage]:
    """The delivery log of a webhook endpoint

     Newest first: each message with its status and every attempt (time, status code or error, duration,
    the
    first bytes of the answer).

    Args:
        webhook_id (str): The webhook endpoint's id.
        status (None | str | Unset):
        job_id (None | str | Unset): Only this job's deliveries.
        event_type (None | str | Unset):
        after (None | str | Unset): The `next` of the previous page.
        limit (int | Unset):  Default: 50.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | WebhookDeliveryPage]
    """

    kwargs = _get_kwargs(
        webhook_id=webhook_id,
        status=status,
        job_id=job_id,
        event_type=event_type,
        after=after,
        limit=limit,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    webhook_id: str,
    *,
    client: AuthenticatedClient,
    status: None | str | Unset = UNSET,
    job_id: None | str | Unset = UNSET,
    event_type: None | str | Unset = UNSET,
    after: None | str | Unset = UNSET,
    limit: int | Unset = 50,
) -> ErrorResponse | WebhookDeliveryPage | None:
    """The delivery log of a webhook endpoint

     Newest first: each message with its status and every attempt (time, status code or error, duration,
    the
    first bytes of the answer).

    Args:
        webhook_id (str): The webhook endpoint's id.
        status (None | str | Unset):
        job_id (None | str | Unset): Only this job's deliveries.
        event_type (None | str | Unset):
        after (None | str | Unset): The `next` of the previous page.
        limit (int | Unset):  Default: 50.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | WebhookDeliveryPage
    """

    return (
        await asyncio_detailed(
            webhook_id=webhook_id,
            client=client,
            status=status,
            job_id=job_id,
            event_type=event_type,
            after=after,
            limit=limit,
        )
    ).parsed
