"""What the API does, between thin route handlers and the project-scoped repository. Services never commit: the
request's session dependency does, and runs :func:`api.deps.after_commit` callbacks (the enqueue) afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api import manifests, repository, secret_service
from api.deps import after_commit
from api.errors import ApiError, not_found
from api.jobkinds import training_output_dir
from api.placement import Placement, resolved_placement
from api.resolve import ENGINE_YAML_KINDS, parse_body, plan_submission, validate_config
from finetuning.contract import last_complete_checkpoint
from finetuning.redaction import references
from finetuning.storage import S3Uri, StorageError, is_remote
from finetuning.storage.places import newest_uploaded_checkpoint
from jobcore import transitions
from jobcore.executors import stop_ray_job
from jobcore.models import TRAINING_KINDS, Job, JobEvent, JobKind, JobStatus, new_id, utcnow
from jobcore.settings import ServiceSettings

logger = logging.getLogger(__name__)


def _enqueue_with_worker(settings: ServiceSettings, job_id: str, queue: str) -> None:
    from worker.dispatch import enqueue_job as send  # imported late: the worker package is optional for the API

    send(settings, job_id, queue)


# The hook that sends a committed job to its queue; tests replace it. Looked up at call time, never bound early.
enqueue_job: Callable[[ServiceSettings, str, str], None] = _enqueue_with_worker


def _dispatch(settings: ServiceSettings, job_id: str, queue: str) -> None:
    try:
        enqueue_job(settings, job_id, queue)
    except Exception:
        # the job is stored and stays queued; a recovery pass re-dispatches queued jobs that no worker claimed
        logger.exception("job %s is stored but could not be sent to queue %r; it stays queued", job_id, queue)


LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$")
MAX_LABELS = 32


def parse_labels(values: list[str] | None) -> dict[str, str]:
    """``["team=nlp", "run=3"]`` -> ``{"team": "nlp", "run": "3"}``; a 422 naming ``label`` otherwise."""
    labels: dict[str, str] = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not LABEL_KEY.match(key) or len(val) > 200:
            raise ApiError(
                422,
                "invalid_label",
                f"label {value!r} is not key=value (key: letters, digits, '_.-/', at most 63; "
                "value: at most 200 characters)",
                "label",
            )
        labels[key] = val
    if len(labels) > MAX_LABELS:
        raise ApiError(422, "invalid_label", f"at most {MAX_LABELS} labels", "label")
    return labels


@dataclass
class SubmitMeta:
    """Job metadata that travels beside the config (query parameters and headers), never inside it."""

    queue: str
    queue_named: bool = False  # the caller chose the queue (else it is the service's default)
    name: str | None = None
    label_values: list[str] = field(default_factory=list)  # key=value, parsed once the caller is authenticated
    processes: int = 1
    placement: Placement | None = None  # a training job's: where it runs
    idempotency_key: str | None = None
    from_manifest: str | None = None  # rerun this job of the project with its config as it ran (no body)
    allow_changed_inputs: bool = False  # a rerun whose local inputs changed since is submitted anyway


def submit_job(
    session: Session,
    settings: ServiceSettings,
    project: str,
    kind: JobKind,
    body: bytes,
    content_type: str | None,
    meta: SubmitMeta,
) -> tuple[Job, bool]:
    """Validate, resolve and store a job, then enqueue it after the commit. Returns (job, created): a repeated
    Idempotency-Key returns the first job with ``created`` False."""
    if meta.idempotency_key:
        existing = repository.get_job_by_idempotency_key(session, project, meta.idempotency_key)
        if existing is not None:
            return _replayed(existing, kind), False
    rerun = None
    if meta.from_manifest:
        manifests.refuse_body(body, meta.from_manifest)
        rerun = manifests.rerun(
            session, project, kind, meta.from_manifest, allow_changed_inputs=meta.allow_changed_inputs
        )
        data = rerun.data
    else:
        data = parse_body(body, content_type)
    env_secrets = secret_service.take_env_secrets(data)
    config = validate_config(kind, data)
    job_id = new_id()
    plan = plan_submission(session, settings, project, kind, config, job_id)
    # no credential is stored as typed: each becomes a secret of the job, the config refers to it
    submitted, run_config, found = secret_service.lift_inline(job_id, plan.submitted, plan.config)
    if kind not in ENGINE_YAML_KINDS and (references(run_config) or env_secrets):
        raise ApiError(422, "invalid_config", f"{kind.value} jobs take no secrets: they read no credentials")
    secret_service.check_references(session, project, run_config, env_secrets, set(found.inline))
    resolved: dict[str, Any] = {"config": run_config, "num_processes": meta.processes if kind in TRAINING_KINDS else 1}
    if kind in TRAINING_KINDS and meta.placement is not None:
        resolved.update(resolved_placement(meta.placement, getattr(config, "batchsize_conf", None)))
    if env_secrets:
        # as references: what names a secret is never masked as one
        resolved["env_secrets"] = {variable: f"${{secrets.{name}}}" for variable, name in env_secrets.items()}
    warnings = [warning] if (warning := found.warning()) else []
    if rerun is not None:
        resolved["rerun_of"] = rerun.job_id
        warnings += rerun.warnings
    if warnings:
        resolved["warnings"] = warnings
    if kind == JobKind.ADAPTER_CONVERSION:
        resolved["training_config"] = plan.training_config
    if plan.overridden:
        resolved["overridden"] = plan.overridden
    if config.upgrades:
        # fields of the original engine's libraries, read in today's spelling (the stored config has it)
        resolved["upgrades"] = [upgrade.as_dict() for upgrade in config.upgrades]
    if settings.max_queued_jobs_per_project or settings.max_active_jobs_per_project:
        repository.lock_project_submissions(session, project)
        if meta.idempotency_key:
            # a concurrent request with this key may have committed while we waited for the lock: a replay
            existing = repository.get_job_by_idempotency_key(session, project, meta.idempotency_key)
            if existing is not None:
                return _replayed(existing, kind), False
        _enforce_job_limits(session, settings, project)
    job = Job(
        id=job_id,
        project=project,
        kind=kind.value,
        status=JobStatus.QUEUED.value,
        name=meta.name,
        labels=parse_labels(meta.label_values),
        queue=meta.queue,
        config=submitted,
        resolved=resolved,
        inputs=plan.inputs,
        idempotency_key=meta.idempotency_key,
    )
    # a savepoint only where a concurrent duplicate can collide (the Idempotency-Key's unique index): it costs two
    # round trips on every submission
    guard = session.begin_nested() if meta.idempotency_key else contextlib.nullcontext()
    try:
        with guard:
            repository.add_job(session, job)
            repository.apply(session, job, transitions.submitted())
            session.flush()  # one flush: the unit of work inserts the job before the event that refers to it
            secret_service.store_inline(session, settings, project, job_id, found)
    except IntegrityError:
        # a concurrent request with the same Idempotency-Key won the unique index: answer with its job
        existing = repository.get_job_by_idempotency_key(session, project, meta.idempotency_key or "")
        if existing is None:
            raise
        return _replayed(existing, kind), False
    after_commit(session, partial(_dispatch, settings, job.id, job.queue))
    return job, True


JOB_LIMIT_RETRY_AFTER_S = 30
UNFINISHED_STATUSES = tuple(s.value for s in JobStatus if not s.terminal)


def _enforce_job_limits(session: Session, settings: ServiceSettings, project: str) -> None:
    """429 too_many_jobs when the project already has as many queued, or unfinished, jobs as it may."""
    counts = repository.count_jobs_by_status(session, project, UNFINISHED_STATUSES)
    queued = counts.get(JobStatus.QUEUED.value, 0)
    active = sum(counts.values())
    for limit, count, what, name in (
        (settings.max_queued_jobs_per_project, queued, "queued", "max_queued_jobs_per_project"),
        (
            settings.max_active_jobs_per_project,
            active,
            "unfinished (queued, running or cancelling)",
            "max_active_jobs_per_project",
        ),
    ):
        if limit and count >= limit:
            raise ApiError(
                429,
                "too_many_jobs",
                f"project {project!r} has {count} {what} jobs and may have at most {limit} ({name}): wait for some "
                "to start or finish, or cancel jobs it no longer needs (POST /v1/jobs/{job_id}/cancel), then submit "
                "again",
                headers={"Retry-After": str(JOB_LIMIT_RETRY_AFTER_S)},
            )


def _replayed(job: Job, kind: JobKind) -> Job:
    """The first job of an Idempotency-Key; reusing the key for another kind of job is a client bug, not a retry."""
    if job.kind != kind:
        raise ApiError(
            409,
            "idempotency_key_reused",
            f"this Idempotency-Key was used for {job.kind} job {job.id}; use a new key for a different request",
            "Idempotency-Key",
        )
    return job


def get_job(session: Session, project: str, job_id: str) -> Job:
    job = repository.get_job(session, project, job_id)
    if job is None:
        raise not_found("job", job_id)
    return job


def list_jobs(
    session: Session,
    project: str,
    *,
    kind: JobKind | None,
    status: JobStatus | None,
    labels: dict[str, str],
    after: str | None,
    limit: int,
) -> tuple[list[Job], str | None]:
    """A page of jobs, newest first, and the cursor of the next page (None on the last)."""
    cursor = None
    if after is not None:
        cursor = repository.get_job_cursor(session, project, after)
        if cursor is None:
            raise ApiError(422, "invalid_cursor", f"after: no job {after} to continue from", "after")
    jobs = repository.list_jobs(
        session,
        project,
        kind=kind.value if kind else None,
        status=status.value if status else None,
        labels=labels,
        after=cursor,
        limit=limit + 1,  # one more tells whether another page exists
    )
    return jobs[:limit], (jobs[limit - 1].id if len(jobs) > limit else None)


def cancel_job(
    session: Session, project: str, job_id: str, *, checkpoint: bool = False, settings: ServiceSettings | None = None
) -> Job:
    """Idempotent: a queued job is cancelled at once; a running one is asked to stop (the worker finishes it).
    ``checkpoint``: a running training job saves a checkpoint at its next step first (``artifacts.checkpoint``), so
    that :func:`resume_job` can continue it. A queued job whose Ray job trains on (its worker handed it back) has
    that Ray job stopped once the cancel is committed."""
    job = repository.get_job(session, project, job_id, for_update=True)
    if job is None:
        raise not_found("job", job_id)
    status = JobStatus(job.status)
    if status == JobStatus.QUEUED:
        # a checkpoint an earlier run saved (it was handed back) is named: the job can be resumed from it
        saved = (job.artifacts or {}).get("checkpoint") if checkpoint else None
        running_on_ray = (job.ray_submission or {}).get("id")
        repository.apply(session, job, transitions.cancelled_while_queued(utcnow(), saved))
        if running_on_ray and settings is not None and settings.ray_address:
            after_commit(session, partial(stop_ray_job, settings.ray_address, str(running_on_ray)))
    elif status == JobStatus.RUNNING:
        save = checkpoint and job.kind in TRAINING_KINDS
        repository.apply(session, job, transitions.cancel_requested(save_checkpoint=save))
    elif status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        raise ApiError(
            409, "job_finished", f"job {job.id} already {status.value}; only a queued or running job can be cancelled"
        )
    session.flush()
    return job


def resume_job(session: Session, settings: ServiceSettings, project: str, job_id: str) -> Job:
    """Queue a cancelled or failed training job again, to continue from the newest checkpoint in its output folder
    (one saved by a cancel with checkpoint, a worker's hand-back, or ``save_strategy``); its runs so far no longer
    count against ``max_attempts``. 409 ``not_resumable`` when it is not such a job or saved no checkpoint."""
    job = repository.get_job(session, project, job_id, for_update=True)
    if job is None:
        raise not_found("job", job_id)
    if job.kind not in TRAINING_KINDS:
        raise ApiError(
            409,
            "not_resumable",
            f"job {job.id} is a {job.kind} job; only training jobs (sft, dpo, grpo) can be resumed",
        )
    if job.status not in (JobStatus.CANCELLED, JobStatus.FAILED):
        raise ApiError(
            409, "not_resumable", f"job {job.id} is {job.status}; only a cancelled or failed job can be resumed"
        )
    checkpoint = _newest_checkpoint(job)
    if checkpoint is None:
        raise ApiError(
            409,
            "not_resumable",
            f"job {job.id} saved no checkpoint to resume from; cancel with ?checkpoint=true, or set "
            "training_args.save_strategy to save checkpoints while training",
        )
    repository.apply(session, job, transitions.resumed(job.attempt, dict(job.artifacts or {}), str(checkpoint)))
    session.flush()
    after_commit(session, partial(_dispatch, settings, job.id, job.queue))
    return job


def _newest_checkpoint(job: Job) -> str | None:
    """The checkpoint a training job would resume from, by the engine's own rule, in its output folder (a bucket
    prefix: the newest whose upload completed) and beside the checkpoint it stopped with."""
    recorded = (job.artifacts or {}).get("checkpoint")
    output_dir = training_output_dir(job)
    if output_dir is not None and is_remote(output_dir):
        try:
            return newest_uploaded_checkpoint(S3Uri.parse(output_dir))
        except StorageError as exc:
            raise ApiError(503, "storage_unavailable", exc.message) from None
    folders = [Path(recorded).parent] if isinstance(recorded, str) and recorded else []
    if output_dir:
        folders.append(Path(output_dir))
    newest = last_complete_checkpoint(*folders)
    return None if newest is None else str(newest)


def list_events(
    session: Session, project: str, job_id: str, *, after: int, limit: int, types: Sequence[str] | None = None
) -> tuple[list[JobEvent], int | None]:
    get_job(session, project, job_id)
    events = repository.list_events(session, project, job_id, after=after, limit=limit + 1, types=types)
    return events[:limit], (events[limit - 1].id if len(events) > limit else None)
