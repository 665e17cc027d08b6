"""Submit, list, read and cancel jobs. One submission route per kind, so OpenAPI shows each kind's config."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api import plans, services
from api.auth import Caller, CallerDep
from api.deps import Database, DatabaseDep, SettingsDep
from api.errors import error_responses
from api.jobkinds import REQUEST_MODELS
from api.manifests import MANIFEST_KINDS, RerunSource, rerun_source
from api.openapi import request_body
from api.placement import check_cluster, placement
from api.schemas import JobPage, JobRead, PlanReport, job_read
from jobcore.executors import executor_for
from jobcore.models import TRAINING_KINDS, JobKind, JobStatus
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
    int | None,
    Query(
        ge=1,
        le=64,
        description="Machines the job trains on (default 1; a rerun: the job's). More than 1 runs it on the "
        "service's Ray cluster (Ray Train); the total batch size stays the same, the per-device batch follows the "
        "world size (nodes x processes).",
    ),
]
FromManifest = Annotated[
    str | None,
    Query(
        max_length=64,
        description="Rerun this job of the project (same kind) with its config as it ran: its manifest's concrete "
        "values (seeds, the model's commit, the engine's choices) applied, a new output folder. Send no body. "
        "Its queue, name, labels, nodes and processes are the default. See docs/manifest.md.",
    ),
]
DryRun = Annotated[
    bool,
    Query(
        description="sft and dpo: check the submission as usual (the same 422s), then answer 200 with a pre-flight "
        "plan (problem rows, token statistics, steps, memory, time) instead of a job; nothing is stored or queued. "
        "See docs/plan.md."
    ),
]
Gpu = Annotated[
    str | None,
    Query(
        max_length=40,
        description="With dry_run: the card to give a memory verdict and a time estimate for (e.g. H100-80GB); "
        "default: every card the plan knows.",
    ),
]
AllowChangedInputs = Annotated[
    bool,
    Query(
        description="With from_manifest: submit even though a local input changed since the job ran (409 "
        "`inputs_changed` otherwise); the job's `resolved.warnings` name the changes."
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


async def _rerun_meta(
    kind: JobKind, database: Database, caller: Caller, meta: services.SubmitMeta, from_manifest: str | None
) -> tuple[services.SubmitMeta, RerunSource | None]:
    """A rerun's metadata: what the request leaves out (queue, name, labels) is the job's it reruns."""
    if not from_manifest:
        return meta, None
    source = await database.run(lambda session: rerun_source(session, caller.project(session), kind, from_manifest))
    meta = replace(
        meta,
        from_manifest=source.job_id,
        queue=meta.queue if meta.queue_named else source.queue,
        queue_named=True,  # the GPU pool it ran on
        name=meta.name if meta.name is not None else source.name,
        label_values=meta.label_values or [f"{key}={value}" for key, value in source.labels.items()],
    )
    return meta, source


async def _dry_run(
    kind: JobKind,
    request: Request,
    database: Database,
    caller: Caller,
    settings: ServiceSettings,
    processes: int,
    gpu: str | None,
) -> JSONResponse:
    """The submission's checks, then the plan; 200 with the report (a report, even where it lists problem rows)."""
    body = await request.body()
    content_type = request.headers.get("content-type")
    config = await database.run(
        lambda session: plans.checked_config(session, settings, caller.project(session), kind, body, content_type)
    )
    report = await plans.run_plan(kind, config, settings, processes=processes, gpu=gpu)
    return JSONResponse(PlanReport.model_validate(report).model_dump(mode="json"), status_code=200)


def _endpoint(kind: JobKind) -> Callable[..., Awaitable[JobRead]]:
    if kind in TRAINING_KINDS:

        async def submit_training(
            request: Request,
            response: Response,
            database: DatabaseDep,
            caller: CallerDep,
            meta: MetaDep,
            settings: SettingsDep,
            processes: Processes = None,
            nodes: Nodes = None,
            from_manifest: FromManifest = None,
            allow_changed_inputs: AllowChangedInputs = False,
            dry_run: DryRun = False,
            gpu: Gpu = None,
        ) -> Any:
            if dry_run:
                return await _dry_run(kind, request, database, caller, settings, (nodes or 1) * (processes or 1), gpu)
            meta, source = await _rerun_meta(kind, database, caller, meta, from_manifest)
            if source is not None:
                # the world size it ran with, unless this request asks for another
                nodes = nodes or source.nodes
                processes = processes or source.processes_per_node
            if source is None and executor_for(settings, nodes or 1) == "ray":
                await database.run(caller.project)  # the token first: nobody unknown makes us ask the cluster
            where = placement(settings, nodes or 1, processes or settings.gpus_per_job)
            await check_cluster(settings, where)
            meta = replace(
                meta, processes=where.processes_per_node, placement=where, allow_changed_inputs=allow_changed_inputs
            )
            if where.executor == "ray" and settings.ray_queue and not meta.queue_named:
                meta = replace(meta, queue=settings.ray_queue)  # followed by a worker that needs no GPU of its own
            return await _submit(kind, request, response, database, caller, meta, settings)

        return submit_training

    if kind in MANIFEST_KINDS:

        async def submit_with_manifest(
            request: Request,
            response: Response,
            database: DatabaseDep,
            caller: CallerDep,
            meta: MetaDep,
            settings: SettingsDep,
            from_manifest: FromManifest = None,
            allow_changed_inputs: AllowChangedInputs = False,
        ) -> JobRead:
            meta, _ = await _rerun_meta(kind, database, caller, meta, from_manifest)
            meta = replace(meta, processes=settings.gpus_per_job, allow_changed_inputs=allow_changed_inputs)
            return await _submit(kind, request, response, database, caller, meta, settings)

        return submit_with_manifest

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


RERUN_NOTE = (
    " With `from_manifest=<job id>` and no body it reruns that job with its config as it ran (`GET "
    "/v1/jobs/{job_id}/manifest`); 409 `inputs_changed` when a local file it read has changed since."
)

SUBMIT_SUMMARIES = {
    JobKind.SFT: "Submit a supervised finetuning (SFT) job",
    JobKind.DPO: "Submit a preference-tuning (DPO) job",
    JobKind.GRPO: "Submit a reinforcement finetuning (GRPO) job, scored by built-in graders",
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
            + "\n\nJob metadata (name, labels, queue) goes in query parameters, beside the config."
            + (RERUN_NOTE if kind in MANIFEST_KINDS else ""),
            openapi_extra=request_body(kind, optional=kind in MANIFEST_KINDS),
            responses={
                200: (
                    {
                        "model": JobRead | PlanReport,
                        "description": "The job an earlier request with this Idempotency-Key made; with "
                        "`dry_run=true`, the pre-flight plan (docs/plan.md)",
                    }
                    if kind in TRAINING_KINDS
                    else {"model": JobRead, "description": "The job an earlier request with this Idempotency-Key made"}
                ),
                **error_responses(401, 404, 409, 413, 415, 422, 429, 503),
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
