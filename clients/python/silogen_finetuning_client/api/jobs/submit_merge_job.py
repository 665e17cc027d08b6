from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_response import ErrorResponse
from ...models.job_read import JobRead
from ...models.merge_request import MergeRequest
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    body: MergeRequest,
    name: None | str | Unset = UNSET,
    label: list[str] | None | Unset = UNSET,
    queue: None | str | Unset = UNSET,
    idempotency_key: None | str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(idempotency_key, Unset):
        headers["Idempotency-Key"] = idempotency_key

    params: dict[str, Any] = {}

    json_name: None | str | Unset
    if isinstance(name, Unset):
        json_name = UNSET
    else:
        json_name = name
    params["name"] = json_name

    json_label: list[str] | None | Unset
    if isinstance(label, Unset):
        json_label = UNSET
    elif isinstance(label, list):
        json_label = label

    else:
        json_label = label
    params["label"] = json_label

    json_queue: None | str | Unset
    if isinstance(queue, Unset):
        json_queue = UNSET
    else:
        json_queue = queue
    params["queue"] = json_queue

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/jobs/merge",
        "params": params,
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorResponse | JobRead | None:
    if response.status_code == 200:
        response_200 = JobRead.from_dict(response.json())

        return response_200

    if response.status_code == 201:
        response_201 = JobRead.from_dict(response.json())

        return response_201

    if response.status_code == 401:
        response_401 = ErrorResponse.from_dict(response.json())

        return response_401

    if response.status_code == 404:
        response_404 = ErrorResponse.from_dict(response.json())

        return response_404

    if response.status_code == 409:
        response_409 = ErrorResponse.from_dict(response.json())

        return response_409

    if response.status_code == 413:
        response_413 = ErrorResponse.from_dict(response.json())

        return response_413

    if response.status_code == 415:
        response_415 = ErrorResponse.from_dict(response.json())

        return response_415

    if response.status_code == 422:
        response_422 = ErrorResponse.from_dict(response.json())

        return response_422

    if response.status_code == 429:
        response_429 = ErrorResponse.from_dict(response.json())

        return response_429

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
) -> Response[ErrorResponse | JobRead]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: MergeRequest,
    name: None | str | Unset = UNSET,
    label: list[str] | None | Unset = UNSET,
    queue: None | str | Unset = UNSET,
    idempotency_key: None | str | Unset = UNSET,
) -> Response[ErrorResponse | JobRead]:
    """Submit a merge job (an adapter merged into its base model)

     Merge an adapter into its base model (``merge_adapter``).

    Job metadata (name, labels, queue) goes in query parameters, beside the config.

    Args:
        name (None | str | Unset): A name for people.
        label (list[str] | None | Unset): `key=value`; repeat for several labels.
        queue (None | str | Unset): Celery queue (GPU pool); default: the service's.
        idempotency_key (None | str | Unset): A retry with the same key returns the first job.
        body (MergeRequest): Merge an adapter into its base model (``merge_adapter``).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | JobRead]
    """

    kwargs = _get_kwargs(
        body=body,
        name=name,
        label=label,
        queue=queue,
        idempotency_key=idempotency_key,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    body: MergeRequest,
    name: None | str | Unset = UNSET,
    label: list[str] | None | Unset = UNSET,
    queue: None | str | Unset = UNSET,
    idempotency_key: None | str | Unset = UNSET,
) -> ErrorResponse | JobRead | None:
    """Submit a merge job (an adapter merged into its base model)

     Merge an adapter into its base model (``merge_adapter``).

    Job metadata (name, labels, queue) goes in query parameters, beside the config.

    Args:
        name (None | str | Unset): A name for people.
        label (list[str] | None | Unset): `key=value`; repeat for several labels.
        queue (None | str | Unset): Celery queue (GPU pool); default: the service's.
        idempotency_key (None | str | Unset): A retry with the same key returns the first job.
        body (MergeRequest): Merge an adapter into its base model (``merge_adapter``).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | JobRead
    """

    return sync_detailed(
        client=client,
        body=body,
        name=name,
        label=label,
        queue=queue,
        idempotency_key=idempotency_key,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: MergeRequest,
    name: None | str | Unset = UNSET,
    label: list[str] | None | Unset = UNSET,
    queue: None | str | Unset = UNSET,
    idempotency_key: None | str | Unset = UNSET,
) -> Response[ErrorResponse | JobRead]:
    """Submit a merge job (an adapter merged into its base model)

     Merge an adapter into its base model (``merge_adapter``).

    Job metadata (name, labels, queue) goes in query parameters, beside the config.

    Args:
        name (None | str | Unset): A name for people.
        label (list[str] | None | Unset): `key=value`; repeat for several labels.
        queue (None | str | Unset): Celery queue (GPU pool); default: the service's.
        idempotency_key (None | str | Unset): A retry with the same key returns the first job.
        body (MergeRequest): Merge an adapter into its base model (``merge_adapter``).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | JobRead]
    """

    kwargs = _get_kwargs(
        body=body,
        name=name,
        label=label,
        queue=queue,
        idempotency_key=idempotency_key,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: MergeRequest,
    name: None | str | Unset = UNSET,
    label: list[str] | None | Unset = UNSET,
    queue: None | str | Unset = UNSET,
    idempotency_key: None | str | Unset = UNSET,
) -> ErrorResponse | JobRead | None:
    """Submit a merge job (an adapter merged into its base model)

     Merge an adapter into its base model (``merge_adapter``).

    Job metadata (name, labels, queue) goes in query parameters, beside the config.

    Args:
        name (None | str | Unset): A name for people.
        label (list[str] | None | Unset): `key=value`; repeat for several labels.
        queue (None | str | Unset): Celery queue (GPU pool); default: the service's.
        idempotency_key (None | str | Unset): A retry with the same key returns the first job.
        body (MergeRequest): Merge an adapter into its base model (``merge_adapter``).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | JobRead
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
            name=name,
            label=label,
            queue=queue,
            idempotency_key=idempotency_key,
        )
    ).parsed
