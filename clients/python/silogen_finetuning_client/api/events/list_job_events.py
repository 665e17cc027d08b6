from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_response import ErrorResponse
from ...models.event_page import EventPage
from ...types import UNSET, Response, Unset


def _get_kwargs(
    job_id: str,
    *,
    after: int | Unset = 0,
    limit: int | Unset = 100,
    type_: list[str] | None | Unset = UNSET,
    last_event_id: None | str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(last_event_id, Unset):
        headers["Last-Event-ID"] = last_event_id

    params: dict[str, Any] = {}

    params["after"] = after

    params["limit"] = limit

    json_type_: list[str] | None | Unset
    if isinstance(type_, Unset):
        json_type_ = UNSET
    elif isinstance(type_, list):
        json_type_ = type_

    else:
        json_type_ = type_
    params["type"] = json_type_

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/jobs/{job_id}/events".format(
            job_id=quote(str(job_id), safe=""),
        ),
        "params": params,
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorResponse | EventPage | None:
    if response.status_code == 200:
        response_200 = EventPage.from_dict(response.json())

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
) -> Response[ErrorResponse | EventPage]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    job_id: str,
    *,
    client: AuthenticatedClient,
    after: int | Unset = 0,
    limit: int | Unset = 100,
    type_: list[str] | None | Unset = UNSET,
    last_event_id: None | str | Unset = UNSET,
) -> Response[ErrorResponse | EventPage]:
    """List a job's events

     The job's events in order, a page at a time. With `Accept: text/event-stream`, the same as
    `stream_job_events`.

    Args:
        job_id (str):
        after (int | Unset): Only events with a larger id. Default: 0.
        limit (int | Unset):  Default: 100.
        type_ (list[str] | None | Unset): Only events of these types (repeat for several), e.g.
            log.
        last_event_id (None | str | Unset): Resume after this event id (sent by EventSource).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | EventPage]
    """

    kwargs = _get_kwargs(
        job_id=job_id,
        after=after,
        limit=limit,
        type_=type_,
        last_event_id=last_event_id,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    job_id: str,
    *,
    client: AuthenticatedClient,
    after: int | Unset = 0,
    limit: int | Unset = 100,
    type_: list[str] | None | Unset = UNSET,
    last_event_id: None | str | Unset = UNSET,
) -> ErrorResponse | EventPage | None:
    """List a job's events

     The job's events in order, a page at a time. With `Accept: text/event-stream`, the same as
    `stream_job_events`.

    Args:
        job_id (str):
        after (int | Unset): Only events with a larger id. Default: 0.
        limit (int | Unset):  Default: 100.
        type_ (list[str] | None | Unset): Only events of these types (repeat for several), e.g.
            log.
        last_event_id (None | str | Unset): Resume after this event id (sent by EventSource).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | EventPage
    """

    return sync_detailed(
        job_id=job_id,
        client=client,
        after=after,
        limit=limit,
        type_=type_,
        last_event_id=last_event_id,
    ).parsed


async def asyncio_detailed(
    job_id: str,
    *,
    client: AuthenticatedClient,
    after: int | Unset = 0,
    limit: int | Unset = 100,
    type_: list[str] | None | Unset = UNSET,
    last_event_id: None | str | Unset = UNSET,
) -> Response[ErrorResponse | EventPage]:
    """List a job's events

     The job's events in order, a page at a time. With `Accept: text/event-stream`, the same as
    `stream_job_events`.

    Args:
        job_id (str):
        after (int | Unset): Only events with a larger id. Default: 0.
        limit (int | Unset):  Default: 100.
        type_ (list[str] | None | Unset): Only events of these types (repeat for several), e.g.
            log.
        last_event_id (None | str | Unset): Resume after this event id (sent by EventSource).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | EventPage]
    """

    kwargs = _get_kwargs(
        job_id=job_id,
        after=after,
        limit=limit,
        type_=type_,
        last_event_id=last_event_id,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    job_id: str,
    *,
    client: AuthenticatedClient,
    after: int | Unset = 0,
    limit: int | Unset = 100,
    type_: list[str] | None | Unset = UNSET,
    last_event_id: None | str | Unset = UNSET,
) -> ErrorResponse | EventPage | None:
    """List a job's events

     The job's events in order, a page at a time. With `Accept: text/event-stream`, the same as
    `stream_job_events`.

    Args:
        job_id (str):
        after (int | Unset): Only events with a larger id. Default: 0.
        limit (int | Unset):  Default: 100.
        type_ (list[str] | None | Unset): Only events of these types (repeat for several), e.g.
            log.
        last_event_id (None | str | Unset): Resume after this event id (sent by EventSource).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | EventPage
    """

    return (
        await asyncio_detailed(
            job_id=job_id,
            client=client,
            after=after,
            limit=limit,
            type_=type_,
            last_event_id=last_event_id,
        )
    ).parsed
