from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_response import ErrorResponse
from ...models.grpo_config import GRPOConfig
from ...models.job_read import JobRead
from ...models.plan_report import PlanReport
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    body: GRPOConfig | Unset = UNSET,
    processes: int | None | Unset = UNSET,
    nodes: int | None | Unset = UNSET,
    from_manifest: None | str | Unset = UNSET,
    allow_changed_inputs: bool | Unset = False,
    dry_run: bool | Unset = False,
    gpu: None | str | Unset = UNSET,
    name: None | str | Unset = UNSET,
    label: list[str] | None | Unset = UNSET,
    queue: None | str | Unset = UNSET,
    idempotency_key: None | str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(idempotency_key, Unset):
        headers["Idempotency-Key"] = idempotency_key

    params: dict[str, Any] = {}

    json_processes: int | None | Unset
    if isinstance(processes, Unset):
        json_processes = UNSET
    else:
        json_processes = processes
    params["processes"] = json_processes

    json_nodes: int | None | Unset
    if isinstance(nodes, Unset):
        json_nodes = UNSET
    else:
        json_nodes = nodes
    params["nodes"] = json_nodes

    json_from_manifest: None | str | Unset
    if isinstance(from_manifest, Unset):
        json_from_manifest = UNSET
    else:
        json_from_manifest = from_manifest
    params["from_manifest"] = json_from_manifest

    params["allow_changed_inputs"] = allow_changed_inputs

    params["dry_run"] = dry_run

    json_gpu: None | str | Unset
    if isinstance(gpu, Unset):
        json_gpu = UNSET
    else:
        json_gpu = gpu
    params["gpu"] = json_gpu

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
        "url": "/v1/jobs/grpo",
        "params": params,
    }

    if not isinstance(body, Unset):
        _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorResponse | JobRead | JobRead | PlanReport | None:
    if response.status_code == 200:

        def _parse_response_200(data: object) -> JobRead | PlanReport:
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                response_200_type_0 = JobRead.from_dict(data)

                return response_200_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            if not isinstance(data, dict):
                raise TypeError()
            response_200_type_1 = PlanReport.from_dict(data)

            return response_200_type_1

        response_200 = _parse_response_200(response.json())

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
) -> Response[ErrorResponse | JobRead | JobRead | PlanReport]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: GRPOConfig | Unset = UNSET,
    processes: int | None | Unset = UNSET,
    nodes: int | None | Unset = UNSET,
    from_manifest: None | str | Unset = UNSET,
    allow_changed_inputs: bool | Unset = False,
    dry_run: bool | Unset = False,
    gpu: None | str | Unset = UNSET,
    name: None | str | Unset = UNSET,
    label: list[str] | None | Unset = UNSET,
    queue: None | str | Unset = UNSET,
    idempotency_key: None | str | Unset = UNSET,
) -> Response[ErrorResponse | JobRead | JobRead | PlanReport]:
    """Submit a reinforcement finetuning (GRPO) job, scored by built-in graders

     Reinforcement finetuning with GRPO (``finetuning grpo config.yaml``): for each prompt of the data
    the model
        samples ``grpo_args.num_generations`` answers, the built-in ``graders`` score each one, and the
    model learns from
        how each answer scored against the others for its prompt. Data rows hold ``messages`` (the
    prompt, rendered with
        ``data_conf.chat_template_name``) and any reference fields the graders read
    (``{{item.FIELD}}``).

    Job metadata (name, labels, queue) goes in query parameters, beside the config. With
    `from_manifest=<job id>` and no body it reruns that job with its config as it ran (`GET
    /v1/jobs/{job_id}/manifest`); 409 `inputs_changed` when a local file it read has changed since.

    Args:
        processes (int | None | Unset): Training processes (GPUs) per node, launched with
            accelerate (one node) or as Ray workers (several); default: the service's.
        nodes (int | None | Unset): Machines the job trains on (default 1; a rerun: the job's).
            More than 1 runs it on the service's Ray cluster (Ray Train); the total batch size stays
            the same, the per-device batch follows the world size (nodes x processes).
        from_manifest (None | str | Unset): Rerun this job of the project (same kind) with its
            config as it ran: its manifest's concrete values (seeds, the model's commit, the engine's
            choices) applied, a new output folder. Send no body. Its queue, name, labels, nodes and
            processes are the default. See docs/manifest.md.
        allow_changed_inputs (bool | Unset): With from_manifest: submit even though a local input
            changed since the job ran (409 `inputs_changed` otherwise); the job's `resolved.warnings`
            name the changes. Default: False.
        dry_run (bool | Unset): sft and dpo: check the submission as usual (the same 422s), then
            answer 200 with a pre-flight plan (problem rows, token statistics, steps, memory, time)
            instead of a job; nothing is stored or queued. See docs/plan.md. Default: False.
        gpu (None | str | Unset): With dry_run: the card to give a memory verdict and a time
            estimate for (e.g. H100-80GB); default: every card the plan knows.
        name (None | str | Unset): A name for people.
        label (list[str] | None | Unset): `key=value`; repeat for several labels.
        queue (None | str | Unset): Celery queue (GPU pool); default: the service's.
        idempotency_key (None | str | Unset): A retry with the same key returns the first job.
        body (GRPOConfig | Unset): Reinforcement finetuning with GRPO (``finetuning grpo
            config.yaml``): for each prompt of the data the model
            samples ``grpo_args.num_generations`` answers, the built-in ``graders`` score each one,
            and the model learns from
            how each answer scored against the others for its prompt. Data rows hold ``messages`` (the
            prompt, rendered with
            ``data_conf.chat_template_name``) and any reference fields the graders read
            (``{{item.FIELD}}``).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | JobRead | JobRead | PlanReport]
    """

    kwargs = _get_kwargs(
        body=body,
        processes=processes,
        nodes=nodes,
        from_manifest=from_manifest,
        allow_changed_inputs=allow_changed_inputs,
        dry_run=dry_run,
        gpu=gpu,
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
    body: GRPOConfig | Unset = UNSET,
    processes: int | None | Unset = UNSET,
    nodes: int | None | Unset = UNSET,
    from_manifest: None | str | Unset = UNSET,
    allow_changed_inputs: bool | Unset = False,
    dry_run: bool | Unset = False,
    gpu: None | str | Unset = UNSET,
    name: None | str | Unset = UNSET,
    label: list[str] | None | Unset = UNSET,
    queue: None | str | Unset = UNSET,
    idempotency_key: None | str | Unset = UNSET,
) -> ErrorResponse | JobRead | JobRead | PlanReport | None:
    """Submit a reinforcement finetuning (GRPO) job, scored by built-in graders

     Reinforcement finetuning with GRPO (``finetuning grpo config.yaml``): for each prompt of the data
    the model
        samples ``grpo_args.num_generations`` answers, the built-in ``graders`` score each one, and the
    model learns from
        how each answer scored against the others for its prompt. Data rows hold ``messages`` (the
    prompt, rendered with
        ``data_conf.chat_template_name``) and any reference fields the graders read
    (``{{item.FIELD}}``).

    Job metadata (name, labels, queue) goes in query parameters, beside the config. With
    `from_manifest=<job id>` and no body it reruns that job with its config as it ran (`GET
    /v1/jobs/{job_id}/manifest`); 409 `inputs_changed` when a local file it read has changed since.

    Args:
        processes (int | None | Unset): Training processes (GPUs) per node, launched with
            accelerate (one node) or as Ray workers (several); default: the service's.
        nodes (int | None | Unset): Machines the job trains on (default 1; a rerun: the job's).
            More than 1 runs it on the service's Ray cluster (Ray Train); the total batch size stays
            the same, the per-device batch follows the world size (nodes x processes).
        from_manifest (None | str | Unset): Rerun this job of the project (same kind) with its
            config as it ran: its manifest's concrete values (seeds, the model's commit, the engine's
            choices) applied, a new output folder. Send no body. Its queue, name, labels, nodes and
            processes are the default. See docs/manifest.md.
        allow_changed_inputs (bool | Unset): With from_manifest: submit even though a local input
            changed since the job ran (409 `inputs_changed` otherwise); the job's `resolved.warnings`
            name the changes. Default: False.
        dry_run (bool | Unset): sft and dpo: check the submission as usual (the same 422s), then
            answer 200 with a pre-flight plan (problem rows, token statistics, steps, memory, time)
            instead of a job; nothing is stored or queued. See docs/plan.md. Default: False.
        gpu (None | str | Unset): With dry_run: the card to give a memory verdict and a time
            estimate for (e.g. H100-80GB); default: every card the plan knows.
        name (None | str | Unset): A name for people.
        label (list[str] | None | Unset): `key=value`; repeat for several labels.
        queue (None | str | Unset): Celery queue (GPU pool); default: the service's.
        idempotency_key (None | str | Unset): A retry with the same key returns the first job.
        body (GRPOConfig | Unset): Reinforcement finetuning with GRPO (``finetuning grpo
            config.yaml``): for each prompt of the data the model
            samples ``grpo_args.num_generations`` answers, the built-in ``graders`` score each one,
            and the model learns from
            how each answer scored against the others for its prompt. Data rows hold ``messages`` (the
            prompt, rendered with
            ``data_conf.chat_template_name``) and any reference fields the graders read
            (``{{item.FIELD}}``).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | JobRead | JobRead | PlanReport
    """

    return sync_detailed(
        client=client,
        body=body,
        processes=processes,
        nodes=nodes,
        from_manifest=from_manifest,
        allow_changed_inputs=allow_changed_inputs,
        dry_run=dry_run,
        gpu=gpu,
        name=name,
        label=label,
        queue=queue,
        idempotency_key=idempotency_key,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: GRPOConfig | Unset = UNSET,
    processes: int | None | Unset = UNSET,
    nodes: int | None | Unset = UNSET,
    from_manifest: None | str | Unset = UNSET,
    allow_changed_inputs: bool | Unset = False,
    dry_run: bool | Unset = False,
    gpu: None | str | Unset = UNSET,
    name: None | str | Unset = UNSET,
    label: list[str] | None | Unset = UNSET,
    queue: None | str | Unset = UNSET,
    idempotency_key: None | str | Unset = UNSET,
) -> Response[ErrorResponse | JobRead | JobRead | PlanReport]:
    """Submit a reinforcement finetuning (GRPO) job, scored by built-in graders

     Reinforcement finetuning with GRPO (``finetuning grpo config.yaml``): for each prompt of the data
    the model
        samples ``grpo_args.num_generations`` answers, the built-in ``graders`` score each one, and the
    model learns from
        how each answer scored against the others for its prompt. Data rows hold ``messages`` (the
    prompt, rendered with
        ``data_conf.chat_template_name``) and any reference fields the graders read
    (``{{item.FIELD}}``).

    Job metadata (name, labels, queue) goes in query parameters, beside the config. With
    `from_manifest=<job id>` and no body it reruns that job with its config as it ran (`GET
    /v1/jobs/{job_id}/manifest`); 409 `inputs_changed` when a local file it read has changed since.

    Args:
        processes (int | None | Unset): Training processes (GPUs) per node, launched with
            accelerate (one node) or as Ray workers (several); default: the service's.
        nodes (int | None | Unset): Machines the job trains on (default 1; a rerun: the job's).
            More than 1 runs it on the service's Ray cluster (Ray Train); the total batch size stays
            the same, the per-device batch follows the world size (nodes x processes).
        from_manifest (None | str | Unset): Rerun this job of the project (same kind) with its
            config as it ran: its manifest's concrete values (seeds, the model's commit, the engine's
            choices) applied, a new output folder. Send no body. Its queue, name, labels, nodes and
            processes are the default. See docs/manifest.md.
        allow_changed_inputs (bool | Unset): With from_manifest: submit even though a local input
            changed since the job ran (409 `inputs_changed` otherwise); the job's `resolved.warnings`
            name the changes. Default: False.
        dry_run (bool | Unset): sft and dpo: check the submission as usual (the same 422s), then
            answer 200 with a pre-flight plan (problem rows, token statistics, steps, memory, time)
            instead of a job; nothing is stored or queued. See docs/plan.md. Default: False.
        gpu (None | str | Unset): With dry_run: the card to give a memory verdict and a time
            estimate for (e.g. H100-80GB); default: every card the plan knows.
        name (None | str | Unset): A name for people.
        label (list[str] | None | Unset): `key=value`; repeat for several labels.
        queue (None | str | Unset): Celery queue (GPU pool); default: the service's.
        idempotency_key (None | str | Unset): A retry with the same key returns the first job.
        body (GRPOConfig | Unset): Reinforcement finetuning with GRPO (``finetuning grpo
            config.yaml``): for each prompt of the data the model
            samples ``grpo_args.num_generations`` answers, the built-in ``graders`` score each one,
            and the model learns from
            how each answer scored against the others for its prompt. Data rows hold ``messages`` (the
            prompt, rendered with
            ``data_conf.chat_template_name``) and any reference fields the graders read
            (``{{item.FIELD}}``).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | JobRead | JobRead | PlanReport]
    """

    kwargs = _get_kwargs(
        body=body,
        processes=processes,
        nodes=nodes,
        from_manifest=from_manifest,
        allow_changed_inputs=allow_changed_inputs,
        dry_run=dry_run,
        gpu=gpu,
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
    body: GRPOConfig | Unset = UNSET,
    processes: int | None | Unset = UNSET,
    nodes: int | None | Unset = UNSET,
    from_manifest: None | str | Unset = UNSET,
    allow_changed_inputs: bool | Unset = False,
    dry_run: bool | Unset = False,
    gpu: None | str | Unset = UNSET,
    name: None | str | Unset = UNSET,
    label: list[str] | None | Unset = UNSET,
    queue: None | str | Unset = UNSET,
    idempotency_key: None | str | Unset = UNSET,
) -> ErrorResponse | JobRead | JobRead | PlanReport | None:
    """Submit a reinforcement finetuning (GRPO) job, scored by built-in graders

     Reinforcement finetuning with GRPO (``finetuning grpo config.yaml``): for each prompt of the data
    the model
        samples ``grpo_args.num_generations`` answers, the built-in ``graders`` score each one, and the
    model learns from
        how each answer scored against the others for its prompt. Data rows hold ``messages`` (the
    prompt, rendered with
        ``data_conf.chat_template_name``) and any reference fields the graders read
    (``{{item.FIELD}}``).

    Job metadata (name, labels, queue) goes in query parameters, beside the config. With
    `from_manifest=<job id>` and no body it reruns that job with its config as it ran (`GET
    /v1/jobs/{job_id}/manifest`); 409 `inputs_changed` when a local file it read has changed since.

    Args:
        processes (int | None | Unset): Training processes (GPUs) per node, launched with
            accelerate (one node) or as Ray workers (several); default: the service's.
        nodes (int | None | Unset): Machines the job trains on (default 1; a rerun: the job's).
            More than 1 runs it on the service's Ray cluster (Ray Train); the total batch size stays
            the same, the per-device batch follows the world size (nodes x processes).
        from_manifest (None | str | Unset): Rerun this job of the project (same kind) with its
            config as it ran: its manifest's concrete values (seeds, the model's commit, the engine's
            choices) applied, a new output folder. Send no body. Its queue, name, labels, nodes and
            processes are the default. See docs/manifest.md.
        allow_changed_inputs (bool | Unset): With from_manifest: submit even though a local input
            changed since the job ran (409 `inputs_changed` otherwise); the job's `resolved.warnings`
            name the changes. Default: False.
        dry_run (bool | Unset): sft and dpo: check the submission as usual (the same 422s), then
            answer 200 with a pre-flight plan (problem rows, token statistics, steps, memory, time)
            instead of a job; nothing is stored or queued. See docs/plan.md. Default: False.
        gpu (None | str | Unset): With dry_run: the card to give a memory verdict and a time
            estimate for (e.g. H100-80GB); default: every card the plan knows.
        name (None | str | Unset): A name for people.
        label (list[str] | None | Unset): `key=value`; repeat for several labels.
        queue (None | str | Unset): Celery queue (GPU pool); default: the service's.
        idempotency_key (None | str | Unset): A retry with the same key returns the first job.
        body (GRPOConfig | Unset): Reinforcement finetuning with GRPO (``finetuning grpo
            config.yaml``): for each prompt of the data the model
            samples ``grpo_args.num_generations`` answers, the built-in ``graders`` score each one,
            and the model learns from
            how each answer scored against the others for its prompt. Data rows hold ``messages`` (the
            prompt, rendered with
            ``data_conf.chat_template_name``) and any reference fields the graders read
            (``{{item.FIELD}}``).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | JobRead | JobRead | PlanReport
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
            processes=processes,
            nodes=nodes,
            from_manifest=from_manifest,
            allow_changed_inputs=allow_changed_inputs,
            dry_run=dry_run,
            gpu=gpu,
            name=name,
            label=label,
            queue=queue,
            idempotency_key=idempotency_key,
        )
    ).parsed
