"""Submit, list, read and cancel jobs. One submission route per kind, so OpenAPI shows each kind's config."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from sqlalchemy.orm import Session

from api import services
from api.auth import Caller, CallerDep
from api.deps import Database, DatabaseDep, SettingsDep
from api.errors import error_responses
from api.jobkinds import REQUEST_MODELS
from api.openapi import request_body
from api.placement import check_cluster, placement
from api.schemas import JobPage, JobRead, job_read
from jobcore.models import JobKind, JobStatus
from jobcore.settings import ServiceSettings

router = APIRouter(prefix="/jobs", tags=["jobs"])

LabelQuery = Annotated[
    list[str] | None, Query(description="`key=value`; repeat for several labels.", examples=["team=nlp"])
]


async def submission_meta(
    settings: SettingsDep,
    name: Annotated[str | None, Query(max_length=200, description="A name for people.")] = None,
    label: LabelQuery = None,
    queue: Annotated[
        str | None,
        Query(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="Celery queue (GPU pool); default: the service's."),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", max_length=200, description="A retry with the same key returns the first job."),
    ] = None,
) -> services.SubmitMeta:
    return services.SubmitMeta(
        queue=queue or settings.default_queue,
        queue_named=queue is not None,
        name=name,
        label_values=label or [],
        idempotency_key=idempotency_key or None,
    )


MetaDep = Annotated[services.SubmitMeta, Depends(submission_meta)]


Processes = Annotated[
    int | None,
    Query(
        ge=1,
        le=8,
        description="Training processes (GPUs) per node, launched with accelerate (one node) or as Ray workers "
        "(several); default: the service's.",
    ),
]
Nodes = Annotated[
    int,
    Query(
        ge=1,
        le=64,
        description="Machines the job trains on. More than 1 runs it on the service's Ray cluster (Ray Train); the "
        "total batch size stays the same, the per-device batch follows the world size (nodes x processes).",
    ),
]


async def _submit(
    kind: JobKind,
    request: Request,
    response: Response,
    database: Database,
    caller: Caller,
    meta: services.SubmitMeta,
    settings: ServiceSettings,
) -> JobRead:
    body = await request.body()  # as sent: the service parses JSON or YAML itself
    content_type = request.headers.get("content-type")

    def work(session: Session) -> tuple[JobRead, bool]:
        job, created = services.submit_job(session, settings, caller.project(session), kind, body, content_type, meta)
        return job_read(job), created

    read, created = await database.run(work)
    if not created:
        response.status_code = 200  # an earlier request with this Idempotency-Key made it
    return read


def _endpoint(kind: JobKind) -> Callable[..., Awaitable[JobRead]]:
    if kind in (JobKind.SFT, JobKind.DPO):

        async def submit_training(
            request: Request,
            response: Response,
            database: DatabaseDep,
            caller: CallerDep,
            meta: MetaDep,
            settings: SettingsDep,
            processes: Processes = None,
            nodes: Nodes = 1,
        ) -> JobRead:
            where = placement(settings, nodes, processes or settings.gpus_per_job)
            await check_cluster(settings, where)
            meta = replace(meta, processes=where.processes_per_node, placement=where)
            if where.executor == "ray" and settings.ray_queue and not meta.queue_named:
                meta = replace(meta, queue=settings.ray_queue)  # followed by a worker that needs no GPU of its own
            return await _submit(kind, request, response, database, caller, meta, settings)

        return submit_training

    async def submit(
        request: Request,
        response: Response,
        database: DatabaseDep,
        caller: CallerDep,
        meta: MetaDep,
        settings: SettingsDep,
    ) -> JobRead:
        meta = replace(meta, processes=settings.gpus_per_job)
        return await _submit(kind, request, response, database, caller, meta, settings)

    return submit


SUBMIT_SUMMARIES = {
    JobKind.SFT: "Submit a supervised finetuning (SFT) job",
    JobKind.DPO: "Submit a preference-tuning (DPO) job",
    JobKind.MERGE: "Submit a merge job (an adapter merged into its base model)",
    JobKind.ADAPTER_CONVERSION: "Submit an adapter-conversion job",
    JobKind.GENERATE: "Submit a generate job",
}


def _add_submission_routes() -> None:
    for kind in JobKind:
        name = f"submit_{kind.value.replace('-', '_')}_job"  # the operation id: submit_sft_job, ...
        endpoint = _endpoint(kind)
        endpoint.__name__ = name
        router.add_api_route(
            f"/{kind.value}",
            endpoint,
            methods=["POST"],
            name=name,
            status_code=201,
            response_model=JobRead,
            summary=SUBMIT_SUMMARIES[kind],
            description=(REQUEST_MODELS[kind].__doc__ or "").strip()
            + "\n\nJob metadata (name, labels, queue) goes in query parameters, beside the config.",
            openapi_extra=request_body(kind),
            responses={
                200: {"model": JobRead, "description": "The job an earlier request with this Idempotency-Key made"},
                **error_responses(401, 409, 413, 415, 422, 429, 503),
            },
        )


_add_submission_routes()


@router.get("", name="list_jobs", summary="List jobs", response_model=JobPage, responses=error_responses(401, 422))
async def list_jobs(
    database: DatabaseDep,
    caller: CallerDep,
    kind: JobKind | None = None,
    status: JobStatus | None = None,
    label: LabelQuery = None,
    after: Annotated[str | None, Query(description="The `next` cursor of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JobPage:
    """The project's jobs, newest first."""

    def work(session: Session) -> JobPage:
        project = caller.project(session)
        labels = services.parse_labels(label)  # after authentication: a caller without a token learns nothing
        jobs, cursor = services.list_jobs(
            session, project, kind=kind, status=status, labels=labels, after=after, limit=limit
        )
        return JobPage(data=[job_read(job) for job in jobs], next=cursor)

    return await database.run(work)


@router.get(
    "/{job_id}", name="get_job", summary="Get a job", response_model=JobRead, responses=error_responses(401, 404)
)
async def get_job(job_id: str, database: DatabaseDep, caller: CallerDep) -> JobRead:
    """Status, phase, progress, timestamps, the resolved config, error, artifacts and metrics of a job."""
    return await database.run(lambda session: job_read(services.get_job(session, caller.project(session), job_id)))


@router.post(
    "/{job_id}/cancel",
    name="cancel_job",
    summary="Cancel a job",
    response_model=JobRead,
    responses=error_responses(401, 404, 409),
)
async def cancel_job(
    job_id: str,
    database: DatabaseDep,
    caller: CallerDep,
    settings: SettingsDep,
    checkpoint: Annotated[
        bool,
        Query(
            description="A running training job saves a checkpoint at its next step before it stops "
            "(`artifacts.checkpoint`), so that it can be resumed (`POST /jobs/{job_id}/resume`)."
        ),
    ] = False,
) -> JobRead:
    """Cancel a job (idempotent). A queued job is cancelled at once; a running one becomes `cancel_requested`
    until its worker has stopped it. A finished job answers 409."""
    return await database.run(
        lambda session: job_read(
            services.cancel_job(session, caller.project(session), job_id, checkpoint=checkpoint, settings=settings)
        )
    )


@router.post(
    "/{job_id}/resume",
    name="resume_job",
    summary="Resume a job from its newest checkpoint",
    response_model=JobRead,
    responses=error_responses(401, 404, 409),
)
async def resume_job(job_id: str, database: DatabaseDep, settings: SettingsDep, caller: CallerDep) -> JobRead:
    """Queue a cancelled or failed training job (sft, dpo) again; it continues from the newest checkpoint in its
    output folder (saved by a cancel with `checkpoint=true`, a worker's shutdown, or `save_strategy`), with the same
    id, events and metrics. 409 `not_resumable` when the job is of another kind or state, or saved no checkpoint."""
    return await database.run(
        lambda session: job_read(services.resume_job(session, settings, caller.project(session), job_id))
    )
