from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_response import ErrorResponse
from ...models.job_manifest import JobManifest
from ...types import Response


def _get_kwargs(
    job_id: str,
) -> dict[str, Any]:

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/jobs/{job_id}/manifest".format(
            job_id=quote(str(job_id), safe=""),
        ),
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorResponse | JobManifest | None:
    if response.status_code == 200:
        response_200 = JobManifest.from_dict(response.json())

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
) -> Response[ErrorResponse | JobManifest]:
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
) -> Response[ErrorResponse | JobManifest]:
    """Get a job's reproducibility manifest

     What it takes to run the job again and get the same (docs/manifest.md): its config as it ran (every
    value
    the engine chose made concrete), the seeds, the SHA-256 of every data file and of the model (or a
    hub model's
    commit), the library versions, the image, the accelerators and the world size. Written by sft, dpo
    and generate
    jobs once their data and model are loaded (404 `manifest_not_ready` before; 404 `no_manifest` for
    merge and
    adapter-conversion jobs); a job that ran more than once serves its newest run's, with `warnings`
    where its runs
    disagree. `POST /v1/jobs/{kind}?from_manifest={job_id}` reruns it.

    Args:
        job_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | JobManifest]
    """

    kwargs = _get_kwargs(
        job_id=job_id,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    job_id: str,
    *,
    client: AuthenticatedClient,
) -> ErrorResponse | JobManifest | None:
    """Get a job's reproducibility manifest

     What it takes to run the job again and get the same (docs/manifest.md): its config as it ran (every
    value
    the engine chose made concrete), the seeds, the SHA-256 of every data file and of the model (or a
    hub model's
    commit), the library versions, the image, the accelerators and the world size. Written by sft, dpo
    and generate
    jobs once their data and model are loaded (404 `manifest_not_ready` before; 404 `no_manifest` for
    merge and
    adapter-conversion jobs); a job that ran more than once serves its newest run's, with `warnings`
    where its runs
    disagree. `POST /v1/jobs/{kind}?from_manifest={job_id}` reruns it.

    Args:
        job_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | JobManifest
    """

    return sync_detailed(
        job_id=job_id,
        client=client,
    ).parsed


async def asyncio_detailed(
    job_id: str,
    *,
    client: AuthenticatedClient,
) -> Response[ErrorResponse | JobManifest]:
    """Get a job's reproducibility manifest

     What it takes to run the job again and get the same (docs/manifest.md): its config as it ran (every
    value
    the engine chose made concrete), the seeds, the SHA-256 of every data file and of the model (or a
    hub model's
    commit), the library versions, the image, the accelerators and the world size. Written by sft, dpo
    and generate
    jobs once their data and model are loaded (404 `manifest_not_ready` before; 404 `no_manifest` for
    merge and
    adapter-conversion jobs); a job that ran more than once serves its newest run's, with `warnings`
    where its runs
    disagree. `POST /v1/jobs/{kind}?from_manifest={job_id}` reruns it.

    Args:
        job_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | JobManifest]
    """

    kwargs = _get_kwargs(
        job_id=job_id,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    job_id: str,
    *,
    client: AuthenticatedClient,
) -> ErrorResponse | JobManifest | None:
    """Get a job's reproducibility manifest

     What it takes to run the job again and get the same (docs/manifest.md): its config as it ran (every
    value
    the engine chose made concrete), the seeds, the SHA-256 of every data file and of the model (or a
    hub model's
    commit), the library versions, the image, the accelerators and the world size. Written by sft, dpo
    and generate
    jobs once their data and model are loaded (404 `manifest_not_ready` before; 404 `no_manifest` for
    merge and
    adapter-conversion jobs); a job that ran more than once serves its newest run's, with `warnings`
    where its runs
    disagree. `POST /v1/jobs/{kind}?from_manifest={job_id}` reruns it.

    Args:
        job_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | JobManifest
    """

    return (
        await asyncio_detailed(
            job_id=job_id,
            client=client,
        )
    ).parsed
