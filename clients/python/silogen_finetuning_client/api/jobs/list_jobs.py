from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_response import ErrorResponse
from ...models.job_kind import JobKind
from ...models.job_page import JobPage
from ...models.job_status import JobStatus
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    kind: JobKind | None | Unset = UNSET,
    status: JobStatus | None | Unset = UNSET,
    label: list[str] | None | Unset = UNSET,
    after: None | str | Unset = UNSET,
    limit: int | Unset = 50,
) -> dict[str, Any]:

    params: dict[str, Any] = {}

    json_kind: None | str | Unset
    if isinstance(kind, Unset):
        json_kind = UNSET
    elif isinstance(kind, str):
        json_kind = kind
    else:
        json_kind = kind
    params["kind"] = json_kind

    json_status: None | str | Unset
    if isinstance(status, Unset):
        json_status = UNSET
    elif isinstance(status, str):
        json_status = status
    else:
        json_status = status
    params["status"] = json_status

    json_label: list[str] | None | Unset
    if isinstance(label, Unset):
        json_label = UNSET
    elif isinstance(label, list):
        json_label = label

    else:
        json_label = label
    params["label"] = json_label

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
        "url": "/v1/jobs",
        "params": params,
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorResponse | JobPage | None:
    if response.status_code == 200:
        response_200 = JobPage.from_dict(response.json())

        return response_200

    if response.status_code == 401:
        response_401 = ErrorResponse.from_dict(response.json())

        return response_401

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
) -> Response[ErrorResponse | JobPage]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    kind: JobKind | None | Unset = UNSET,
    status: JobStatus | None | Unset = UNSET,
    label: list[str] | None | Unset = UNSET,
    after: None | str | Unset = UNSET,
    limit: int | Unset = 50,
) -> Response[ErrorResponse | JobPage]:
    """List jobs

     The project's jobs, newest first.

    Args:
        kind (JobKind | None | Unset):
        status (JobStatus | None | Unset):
        label (list[str] | None | Unset): `key=value`; repeat for several labels.
        after (None | str | Unset): The `next` cursor of the previous page.
        limit (int | Unset):  Default: 50.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | JobPage]
    """

    kwargs = _get_kwargs(
        kind=kind,
        status=status,
        label=label,
        after=after,
        limit=limit,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    kind: JobKind | None | Unset = UNSET,
    status: JobStatus | None | Unset = UNSET,
    label: list[str] | None | Unset = UNSET,
    after: None | str | Unset = UNSET,
    limit: int | Unset = 50,
) -> ErrorResponse | JobPage | None:
    """List jobs

     The project's jobs, newest first.

    Args:
        kind (JobKind | None | Unset):
        status (JobStatus | None | Unset):
        label (list[str] | None | Unset): `key=value`; repeat for several labels.
        after (None | str | Unset): The `next` cursor of the previous page.
        limit (int | Unset):  Default: 50.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | JobPage
    """

    return sync_detailed(
        client=client,
        kind=kind,
        status=status,
        label=label,
        after=after,
        limit=limit,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    kind: JobKind | None | Unset = UNSET,
    status: JobStatus | None | Unset = UNSET,
    label: list[str] | None | Unset = UNSET,
    after: None | str | Unset = UNSET,
    limit: int | Unset = 50,
) -> Response[ErrorResponse | JobPage]:
    """List jobs

     The project's jobs, newest first.

    Args:
        kind (JobKind | None | Unset):
        status (JobStatus | None | Unset):
        label (list[str] | None | Unset): `key=value`; repeat for several labels.
        after (None | str | Unset): The `next` cursor of the previous page.
        limit (int | Unset):  Default: 50.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | JobPage]
    """

    kwargs = _get_kwargs(
        kind=kind,
        status=status,
        label=label,
        after=after,
        limit=limit,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    kind: JobKind | None | Unset = UNSET,
    status: JobStatus | None | Unset = UNSET,
    label: list[str] | None | Unset = UNSET,
    after: None | str | Unset = UNSET,
    limit: int | Unset = 50,
) -> ErrorResponse | JobPage | None:
    """List jobs

     The project's jobs, newest first.

    Args:
        kind (JobKind | None | Unset):
        status (JobStatus | None | Unset):
        label (list[str] | None | Unset): `key=value`; repeat for several labels.
        after (None | str | Unset): The `next` cursor of the previous page.
        limit (int | Unset):  Default: 50.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | JobPage
    """

    return (
        await asyncio_detailed(
            client=client,
            kind=kind,
            status=status,
            label=label,
            after=after,
            limit=limit,
        )
    ).parsed
