"""A job's events (paged JSON or Server-Sent Events), its log, its metric series, its checkpoints, its
reproducibility manifest and a generate job's output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from api import manifests, results, services
from api.auth import Caller, CallerDep
from api.deps import DatabaseDep
from api.errors import ApiError, error_responses
from api.schemas import CheckpointPage, EventPage, EventRead, JobManifest, JobMetrics
from api.streams import log_stream, sse_stream

router = APIRouter(prefix="/jobs/{job_id}", tags=["events"])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering of a live stream
SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`text/event-stream`: `id:` event id, `event:` type, `data:` JSON; heartbeat comments",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}
LastEventId = Annotated[
    str | None, Header(alias="Last-Event-ID", description="Resume after this event id (sent by EventSource).")
]
After = Annotated[int, Query(ge=0, description="Only events with a larger id.")]


def _stream(request: Request, project: str, job_id: str, after: int, last_event_id: str | None) -> StreamingResponse:
    if last_event_id:
        # a reconnecting EventSource repeats the original URL (and its `after`): the header is the newer cursor
        if not last_event_id.strip().isdigit():
            raise ApiError(422, "invalid_parameter", "Last-Event-ID must be an event id", "Last-Event-ID")
        after = int(last_event_id)
    stream = sse_stream(request.app.state.event_hub, project, job_id, after)
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


def _checked_project(caller: Caller, job_id: str) -> Callable[[Session], str]:
    """A unit of work: the caller's project, once it is known to hold the job (else 404)."""

    def work(session: Session) -> str:
        project = caller.project(session)
        services.get_job(session, project, job_id)
        return project

    return work


@router.get(
    "/events",
    name="list_job_events",
    summary="List a job's events",
    response_model=EventPage,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}, **error_responses(401, 404)},
)
async def list_job_events(
    job_id: str,
    request: Request,
    database: DatabaseDep,
    caller: CallerDep,
    after: After = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    last_event_id: LastEventId = None,
    event_type: Annotated[
        list[str] | None,
        Query(alias="type", max_length=20, description="Only events of these types (repeat for several), e.g. log."),
    ] = None,
) -> Any:
    """The job's events in order, a page at a time. With `Accept: text/event-stream`, the same as
    `stream_job_events`."""
    if "text/event-stream" in request.headers.get("accept", ""):
        project = await database.run(_checked_project(caller, job_id))
        return _stream(request, project, job_id, after, last_event_id)

    def work(session: Session) -> EventPage:
        events, cursor = services.list_events(
            session, caller.project(session), job_id, after=after, limit=limit, types=event_type
        )
        return EventPage(data=[EventRead.model_validate(e) for e in events], next=cursor)

    return await database.run(work)


@router.get(
    "/events/stream",
    name="stream_job_events",
    summary="Stream a job's events (server-sent events)",
    response_class=StreamingResponse,
    responses={**SSE_RESPONSE, **error_responses(401, 404, 422)},
)
async def stream_job_events(
    job_id: str,
    request: Request,
    database: DatabaseDep,
    caller: CallerDep,
    after: After = 0,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    """The job's events as Server-Sent Events, live, with heartbeats; resumable with `Last-Event-ID`. The stream
    ends once the job is finished and every event was sent."""
    project = await database.run(_checked_project(caller, job_id))
    return _stream(request, project, job_id, after, last_event_id)


@router.get(
    "/logs",
    name="get_job_logs",
    summary="Get a job's log lines",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **error_responses(401, 404)},
)
async def get_job_logs(
    job_id: str,
    request: Request,
    database: DatabaseDep,
    caller: CallerDep,
    follow: Annotated[bool, Query(description="Keep streaming new lines until the job is finished.")] = False,
) -> StreamingResponse:
    """The job's log as text: its output lines and the engine's messages."""
    project = await database.run(_checked_project(caller, job_id))
    stream = log_stream(request.app.state.event_hub, project, job_id, follow=follow)
    return StreamingResponse(stream, media_type="text/plain; charset=utf-8", headers=SSE_HEADERS if follow else None)


@router.get(
    "/metrics",
    name="get_job_metrics",
    summary="Get a job's metrics series",
    response_model=JobMetrics,
    responses=error_responses(401, 404),
)
async def get_job_metrics(
    job_id: str,
    database: DatabaseDep,
    caller: CallerDep,
    include_superseded: Annotated[
        bool,
        Query(description="Also the points earlier runs logged after the checkpoint a later run resumed from."),
    ] = False,
) -> JobMetrics:
    """Per-step series of the training metrics (loss, learning rate, grad norm, tokens/s, ...) and evaluations:
    each step once, from the run that carried the job on."""

    def work(session: Session) -> JobMetrics:
        series = results.job_metrics(session, caller.project(session), job_id, include_superseded=include_superseded)
        return JobMetrics.model_validate(series)

    return await database.run(work)


@router.get(
    "/output",
    name="get_job_output",
    summary="Get a job's output",
    response_model=list[dict[str, Any]],
    responses={
        200: {"content": {"application/yaml": {"schema": {"type": "string"}}}},
        **error_responses(401, 404, 409),
    },
)
async def get_job_output(job_id: str, request: Request, database: DatabaseDep, caller: CallerDep) -> Response:
    """A succeeded generate job's answers: JSON, or the YAML file with `Accept: application/yaml`."""
    location = await database.run(lambda session: results.job_output_location(session, caller.project(session), job_id))
    content = await anyio.to_thread.run_sync(results.read_output_bytes, location)
    accept = request.headers.get("accept", "")
    if "yaml" in accept and "application/json" not in accept:
        return Response(content, media_type="application/yaml")
    return JSONResponse(results.parse_output(content))


@router.get(
    "/checkpoints",
    name="list_job_checkpoints",
    summary="List a job's checkpoints",
    response_model=CheckpointPage,
    responses=error_responses(401, 404),
)
async def list_job_checkpoints(
    job_id: str,
    database: DatabaseDep,
    caller: CallerDep,
    after: Annotated[int, Query(ge=0, description="Only checkpoints of a later step (the `next` of a page).")] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CheckpointPage:
    """A training job's saved checkpoints by step, complete or not, each with the train and eval metrics logged at
    its step, its size and where it lives (a folder or an s3:// prefix). A complete one can be named as
    `job:<id>/checkpoint-<step>` wherever a model or adapter goes."""

    def work(session: Session) -> CheckpointPage:
        rows, cursor = results.list_job_checkpoints(session, caller.project(session), job_id, after=after, limit=limit)
        return CheckpointPage.model_validate({"data": rows, "next": cursor})

    return await database.run(work)


@router.get(
    "/manifest",
    name="get_job_manifest",
    summary="Get a job's reproducibility manifest",
    response_model=JobManifest,
    responses=error_responses(401, 404),
)
async def get_job_manifest(job_id: str, database: DatabaseDep, caller: CallerDep) -> JobManifest:
    """What it takes to run the job again and get the same (docs/manifest.md): its config as it ran (every value
    the engine chose made concrete), the seeds, the SHA-256 of every data file and of the model (or a hub model's
    commit), the library versions, the image, the accelerators and the world size. Written by sft, dpo and generate
    jobs once their data and model are loaded (404 `manifest_not_ready` before; 404 `no_manifest` for merge and
    adapter-conversion jobs); a job that ran more than once serves its newest run's, with `warnings` where its runs
    disagree. `POST /v1/jobs/{kind}?from_manifest={job_id}` reruns it."""

    def work(session: Session) -> JobManifest:
        return JobManifest.model_validate(manifests.job_manifest(session, caller.project(session), job_id))

    return await database.run(work)
