"""Every database access of the worker, each in one short transaction through ``session_scope``.

The state changes themselves (row values, ``job`` event, attempt history) are :mod:`jobcore.transitions`'; this
module carries them out behind its fence.

Fencing: a claim increments ``jobs.attempt`` and the claimant keeps that number as its token. Every later write
(lease renewal, events, the outcome) is conditioned on ``attempt`` still matching and the job still being active, so
a worker that lost its job (lease expired, another worker claimed it) can write nothing more, and terminal statuses
never change.

Time: on Postgres the database's clock (``now()``) stamps and compares leases, so workers on machines whose clocks
disagree still agree on who holds a lease; SQLite (the embedded single-machine demo) uses this process' UTC clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from finetuning.contract import EVENTS_VERSION, EventType, checkpoint_step
from finetuning.redaction import redact
from jobcore import transitions
from jobcore.db import session_scope
from jobcore.models import ACTIVE_STATUSES, RESUMED_EVENT, Job, JobEvent, JobStatus
from jobcore.settings import ServiceSettings
from jobcore.transitions import db_now, logged_step
from jobcore.webhooks import outbox

# The fields of an engine ``progress`` event that make up ``job.progress``.
PROGRESS_FIELDS = ("step", "total_steps", "percent", "elapsed_s", "eta_s")
# The service event the worker writes beside the engine's and the job's own transitions: the child process.
PROCESS_EVENT = "process"

Event = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Claim:
    """A job this worker now holds; ``attempt`` is the fencing token for every later write."""

    job_id: str
    kind: str
    resolved: dict[str, Any]
    queue: str
    attempt: int
    cancel_requested: bool
    checkpoint: str | None = None  # where an earlier attempt stopped with a checkpoint (hand-back, cancel)
    project: str = ""
    ray_submission: dict[str, Any] | None = None  # the Ray job an earlier attempt started and left running


@dataclass(frozen=True)
class LeaseState:
    """``held``: the job is still this attempt's (else stop at once, writing nothing); ``cancel_requested``: stop it
    (``cancel_checkpoint``: saving a checkpoint first)."""

    held: bool
    cancel_requested: bool = False
    cancel_checkpoint: bool = False  # the cancel asks for a checkpoint first


def _held(job_id: str, attempt: int) -> ColumnElement[bool]:
    return and_(Job.id == job_id, Job.attempt == attempt, Job.status.in_(ACTIVE_STATUSES))


def claim_job(settings: ServiceSettings, job_id: str, worker_name: str) -> Claim | None:
    """Take the job if it is queued, or running with an expired lease (its worker was lost); None otherwise (running
    elsewhere with a live lease, finished, cancelled, unknown). One atomic UPDATE, so of two concurrent deliveries
    exactly one wins."""
    with session_scope(settings.database_url) as session:
        now = db_now(session)
        lease_expired = or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < now)
        claimable = or_(Job.status == JobStatus.QUEUED.value, and_(Job.status.in_(ACTIVE_STATUSES), lease_expired))
        transition = transitions.claimed(worker_name, now, settings.lease_seconds)
        row = session.execute(
            update(Job)
            .where(Job.id == job_id, claimable)
            .values(**transition.values)
            .returning(
                Job.project,
                Job.kind,
                Job.resolved,
                Job.queue,
                Job.attempt,
                Job.cancel_requested,
                Job.updated_at,
                Job.artifacts,
                Job.ray_submission,
            )
            .execution_options(synchronize_session=False)
        ).first()
        if row is None:
            return None
        transitions.record(session, job_id, row.attempt, transition, row.updated_at)
        checkpoint = (row.artifacts or {}).get("checkpoint")
        return Claim(
            job_id,
            row.kind,
            dict(row.resolved or {}),
            row.queue,
            row.attempt,
            bool(row.cancel_requested),
            checkpoint if isinstance(checkpoint, str) else None,
            row.project,
            dict(row.ray_submission) if row.ray_submission else None,
        )


def renew_lease(settings: ServiceSettings, job_id: str, attempt: int) -> LeaseState:
    """Extend the lease by ``lease_seconds`` if ``attempt`` still holds the job; report a requested cancel."""
    with session_scope(settings.database_url) as session:
        now = db_now(session)
        row = session.execute(
            update(Job)
            .where(_held(job_id, attempt))
            .values(lease_expires_at=now + timedelta(seconds=settings.lease_seconds), updated_at=now)
            .returning(Job.status, Job.cancel_requested, Job.cancel_checkpoint)
            .execution_options(synchronize_session=False)
        ).first()
    return _lease_state(row)


def _lease_state(row: Any) -> LeaseState:
    if row is None:
        return LeaseState(held=False)
    cancel = bool(row.cancel_requested) or row.status == JobStatus.CANCEL_REQUESTED.value
    return LeaseState(True, cancel, cancel and bool(row.cancel_checkpoint))


def lease_state(settings: ServiceSettings, job_id: str, attempt: int) -> LeaseState:
    """Like :func:`renew_lease` but read-only: the cheap check a worker makes between renewals to notice a cancel."""
    with session_scope(settings.database_url) as session:
        row = session.execute(
            select(Job.status, Job.cancel_requested, Job.cancel_checkpoint).where(_held(job_id, attempt))
        ).first()
    return _lease_state(row)


def _engine_event(data: dict[str, Any]) -> bool:
    return data.get("v") == EVENTS_VERSION


def append_events(settings: ServiceSettings, job_id: str, attempt: int, events: Sequence[Event]) -> bool:
    """Store ``events`` (type, data) in order, and in the same transaction update the job from them: ``phase`` sets
    ``job.phase``, ``progress`` sets ``job.progress``, ``run_started`` stores the engine's resolved values in
    ``job.resolved["engine"]``. The final ``status`` event is stored but applied by :func:`finish_job`.
    False (and nothing written) when ``attempt`` no longer holds the job."""
    if not events:
        return True
    with session_scope(settings.database_url) as session:
        # the fenced UPDATE comes first: it also locks the row, so no claim can slip in before the inserts
        row = session.execute(
            update(Job)
            .where(_held(job_id, attempt))
            .values(updated_at=db_now(session))
            .returning(Job.resolved)
            .execution_options(synchronize_session=False)
        ).first()
        if row is None:
            return False
        changes: dict[str, Any] = {}
        for kind, data in events:
            if not _engine_event(data):
                continue  # a log line, a service event, or an engine format we don't know: stored, not applied
            if kind == EventType.PHASE and isinstance(data.get("phase"), str):
                changes["phase"] = data["phase"]
            elif kind == EventType.PROGRESS:
                changes["progress"] = {name: data.get(name) for name in PROGRESS_FIELDS}
            elif kind == EventType.RUN_STARTED:
                config = data.get("config")
                if isinstance(config, dict) and isinstance(config.get("resolved"), dict):
                    base = changes.get("resolved", row.resolved) or {}
                    changes["resolved"] = {**base, "engine": config["resolved"]}
        if changes:
            session.execute(
                update(Job).where(Job.id == job_id).values(**changes).execution_options(synchronize_session=False)
            )
        # an engine event says which run wrote it: one an earlier attempt wrote but never stored keeps its number
        # credentials are masked before anything is stored (the engine masks its own events; its output lines and
        # the secrets this worker resolved for it are masked here)
        stored: list[dict[str, Any]] = [
            {"job_id": job_id, "type": kind, "data": redact(data), "attempt": _attempt_of(data, attempt)}
            for kind, data in events
        ]
        # a resume's own event goes right after its run_started, before the resumed run's first steps: the order
        # of the log is what the metrics series is built from
        start = 0
        for index, event in enumerate(stored):
            resumed = _resumed_checkpoint(event)
            if resumed is not None:
                session.execute(insert(JobEvent), stored[start : index + 1])
                record_resume(session, job_id, event["attempt"], *resumed)
                start = index + 1
        if start < len(stored):
            session.execute(insert(JobEvent), stored[start:])
        # the webhooks of checkpoints and evaluations, in the same transaction
        outbox.enqueue(session, job_id, [(event["type"], event["data"]) for event in stored])
    return True


def _attempt_of(data: dict[str, Any], default: int) -> int:
    value = data.get("attempt")
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _resumed_checkpoint(row: dict[str, Any]) -> tuple[str, int] | None:
    """(checkpoint, step) when ``row`` is an engine's ``run_started`` that resumes a checkpoint."""
    if row["type"] != EventType.RUN_STARTED or not _engine_event(row["data"]):
        return None
    config = row["data"].get("config")
    resolved = config.get("resolved") if isinstance(config, dict) else None
    checkpoint = resolved.get("resume_from_checkpoint") if isinstance(resolved, dict) else None
    if not isinstance(checkpoint, str):
        return None
    step = checkpoint_step(Path(checkpoint))
    return (checkpoint, step) if step is not None else None


def record_resume(session: Session, job_id: str, attempt: int, checkpoint: str, step: int) -> None:
    """``attempt`` resumed from ``checkpoint`` (its ``step``): a ``resumed`` event saying what it re-runs, and in the
    attempt history where it started and what the earlier attempt lost (the steps after the checkpoint it had done,
    and the seconds from that checkpoint's step to its last logged step)."""
    metrics = (JobEvent.job_id == job_id, JobEvent.type == EventType.METRICS)
    earlier = session.execute(
        select(JobEvent.attempt, func.max(logged_step()))
        .where(*metrics, JobEvent.attempt < attempt)
        .group_by(JobEvent.attempt)
        .order_by(JobEvent.attempt.desc())
    ).first()
    rerun: dict[str, Any] | None = None
    if earlier is not None and earlier[1] is not None and int(earlier[1]) > step:
        lost_attempt, last_step = int(earlier[0]), int(earlier[1])
        of_lost = (*metrics, JobEvent.attempt == lost_attempt)
        ended = session.scalar(select(func.max(JobEvent.created_at)).where(*of_lost))
        began = session.scalar(select(func.max(JobEvent.created_at)).where(*of_lost, logged_step() <= step))
        began = began or session.scalar(select(func.min(JobEvent.created_at)).where(*of_lost))
        seconds = round(max(0.0, (ended - began).total_seconds()), 1) if ended and began else None
        rerun = {"attempt": lost_attempt, "from_step": step + 1, "to_step": last_step, "lost_seconds": seconds}
        transitions.record_attempt(
            session,
            job_id,
            lost_attempt,
            {"last_step": last_step, "lost_steps": last_step - step, "lost_seconds": seconds},
        )
    data = {"attempt": attempt, "checkpoint": checkpoint, "from_step": step, "rerun": rerun}
    session.execute(insert(JobEvent).values(job_id=job_id, type=RESUMED_EVENT, data=data, attempt=attempt))
    transitions.record_attempt(session, job_id, attempt, {"resumed_from": {"checkpoint": checkpoint, "step": step}})


def finish_job(
    settings: ServiceSettings,
    job_id: str,
    attempt: int,
    status: JobStatus | str,
    error: dict[str, Any] | None = None,
    artifacts: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    *,
    exit_code: int | None = None,
    checkpoint: str | None = None,
) -> bool:
    """Record the outcome: terminal ``status``, ``finished_at``, error, artifacts, metrics and MLflow run id; clear
    the lease; add a ``job`` event; close the attempt's history entry. ``checkpoint``: the folder the run saved when it
    was stopped (a cancel with checkpoint), kept as ``artifacts.checkpoint`` to resume from. False (nothing written)
    when ``attempt`` no longer holds the job."""
    with session_scope(settings.database_url) as session:
        transition = transitions.finished(
            JobStatus(status),
            db_now(session),
            error=error,
            artifacts=artifacts,
            metrics=metrics,
            exit_code=exit_code,
            checkpoint=checkpoint,
        )
        row = session.execute(
            update(Job)
            .where(_held(job_id, attempt))
            .values(**transition.values)
            .returning(Job.finished_at)
            .execution_options(synchronize_session=False)
        ).first()
        if row is None:
            return False
        transitions.record(session, job_id, attempt, transition, row.finished_at)
    return True


def hand_back(settings: ServiceSettings, job_id: str, attempt: int, checkpoint: str | None) -> str | None:
    """Give the job back to the queue because this worker is shutting down: ``queued`` again, the lease cleared, the
    attempt not counted against ``max_attempts``, ``checkpoint`` (the folder the run saved when it stopped, if it
    did) kept as ``artifacts.checkpoint``; a ``job`` event ``{"status": "queued", "attempt", "reason":
    "worker_shutdown", "checkpoint"}``. A cancel requested meanwhile wins: the job ends ``cancelled``. Returns the
    status written (``queued``, ``cancelled``), None (nothing written) when ``attempt`` no longer holds the job."""
    with session_scope(settings.database_url) as session:
        now = db_now(session)
        row = session.execute(
            select(Job.status, Job.cancel_requested, Job.artifacts).where(_held(job_id, attempt)).with_for_update()
        ).first()
        if row is None:
            return None
        cancelled = bool(row.cancel_requested) or row.status == JobStatus.CANCEL_REQUESTED.value
        transition = transitions.handed_back(now, dict(row.artifacts or {}), checkpoint, cancelled=cancelled)
        ended = session.execute(
            update(Job)
            .where(_held(job_id, attempt))
            .values(**transition.values)
            .returning(Job.updated_at)
            .execution_options(synchronize_session=False)
        ).first()
        if ended is None:
            return None
        transitions.record(session, job_id, attempt, transition, ended.updated_at)
        status = str(transition.values["status"])
    return status


def record_ray_submission(settings: ServiceSettings, job_id: str, attempt: int, submission: dict[str, Any]) -> bool:
    """Name the Ray job this attempt submitted on the job (before it is submitted: a worker lost right after
    submitting must not leave a copy no successor knows of); False when the attempt no longer holds the job."""
    with session_scope(settings.database_url) as session:
        result = session.execute(
            update(Job)
            .where(_held(job_id, attempt))
            .values(ray_submission=submission)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))


def record_ray_restarts(settings: ServiceSettings, job_id: str, attempt: int, restarts: int) -> bool:
    """Count Ray Train's restarts of the training group (a lost Ray worker or node) in this attempt's history entry
    (``ray_restarts``); False when the attempt no longer holds the job."""
    with session_scope(settings.database_url) as session:
        row = session.execute(
            update(Job)
            .where(_held(job_id, attempt))
            .values(updated_at=db_now(session))
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        ).first()
        if row is None:
            return False
        transitions.record_attempt(session, job_id, attempt, {"ray_restarts": restarts})
    return True


def last_engine_seq(settings: ServiceSettings, job_id: str) -> int:
    """The highest engine event ``seq`` stored for the job (0 when none): engine events carry ``seq``, numbered on
    across the attempts that share the job's events file; the worker's own lines and events do not."""
    with session_scope(settings.database_url) as session:
        value = session.scalar(select(func.max(JobEvent.data["seq"].as_integer())).where(JobEvent.job_id == job_id))
    return int(value or 0)


def job_queue(settings: ServiceSettings, job_id: str) -> str | None:
    """The queue the job is sent to, or None for an unknown job."""
    with session_scope(settings.database_url) as session:
        return session.scalar(select(Job.queue).where(Job.id == job_id))


def job_secrets(settings: ServiceSettings, project: str, names: set[str]) -> dict[str, str]:
    """The values of the project's secrets ``names`` (see :mod:`jobcore.secrets`)."""
    from jobcore import secrets

    with session_scope(settings.database_url) as session:
        return secrets.reveal(session, settings, project, names)
