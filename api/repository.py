"""Every job and event query, always filtered by the caller's project: another project's job is simply not found.

Plain functions over a session; no commits (the request's session dependency owns the transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.orm import Session

from jobcore.models import Job, JobEvent
from jobcore.transitions import JOB_EVENT, Transition
from jobcore.webhooks import outbox

MAX_EVENT_ID = 2**63 - 1  # the largest value of the event id column (BIGINT; SQLite INTEGER)


def get_job(session: Session, project: str, job_id: str, *, for_update: bool = False) -> Job | None:
    query = select(Job).where(Job.project == project, Job.id == job_id)
    if for_update:
        # serialises a cancel with the worker's claim of the same row (a no-op on SQLite, which locks the file)
        query = query.with_for_update()
    return session.scalar(query)


def get_job_by_idempotency_key(session: Session, project: str, key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.project == project, Job.idempotency_key == key))


def get_job_status(session: Session, project: str, job_id: str) -> str | None:
    return session.scalar(select(Job.status).where(Job.project == project, Job.id == job_id))


def get_job_cursor(session: Session, project: str, job_id: str) -> tuple[datetime, str] | None:
    row = session.execute(select(Job.created_at, Job.id).where(Job.project == project, Job.id == job_id)).first()
    return (row[0], row[1]) if row else None


def list_jobs(
    session: Session,
    project: str,
    *,
    kind: str | None = None,
    status: str | None = None,
    labels: dict[str, str] | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 50,
) -> list[Job]:
    """Newest first; ``after`` is the (created_at, id) of the last job of the previous page."""
    query = select(Job).where(Job.project == project)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if status is not None:
        query = query.where(Job.status == status)
    for key, value in (labels or {}).items():
        # ->> on Postgres, json_extract on SQLite: the same query on both
        query = query.where(Job.labels[key].as_string() == value)
    if after is not None:
        created_at, job_id = after
        query = query.where(or_(Job.created_at < created_at, and_(Job.created_at == created_at, Job.id < job_id)))
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    return list(session.scalars(query))


def count_jobs_by_status(session: Session, project: str, statuses: Sequence[str]) -> dict[str, int]:
    """How many of the project's jobs are in each of ``statuses`` (absent: none)."""
    query = (
        select(Job.status, func.count()).where(Job.project == project, Job.status.in_(statuses)).group_by(Job.status)
    )
    return {status: int(count) for status, count in session.execute(query)}


def lock_project_submissions(session: Session, project: str) -> None:
    """Serialises the project's submissions until the transaction ends, so a per-project limit holds under
    concurrent requests (a transaction-scoped advisory lock on Postgres; SQLite serialises writers anyway)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"submit:{project}"})


def add_job(session: Session, job: Job) -> None:
    session.add(job)


def apply(session: Session, job: Job, transition: Transition) -> None:
    """Carry out a state change on a job this session holds (locked ``FOR UPDATE``, or just created): its values,
    its ``job`` event and the webhooks that event makes (a cancel while queued)."""
    for name, value in transition.values.items():
        setattr(job, name, value)
    event = add_event(session, job, JOB_EVENT, transition.event_for(job.attempt or 0))
    outbox.enqueue(session, job.id, [(event.type, event.data)])


def add_event(session: Session, job: Job, type_: str, data: dict[str, Any]) -> JobEvent:
    event = JobEvent(job_id=job.id, type=type_, data=data, attempt=job.attempt or 0)
    session.add(event)
    return event


def list_events(
    session: Session,
    project: str,
    job_id: str,
    *,
    after: int = 0,
    limit: int = 100,
    types: Sequence[str] | None = None,
) -> list[JobEvent]:
    """A job's events with ids above ``after``, oldest first."""
    # ids are 64-bit: a larger cursor (a client's `after` or Last-Event-ID) has nothing after it, and must not reach
    # the database as an out-of-range parameter (a 500 on Postgres and SQLite alike)
    after = min(after, MAX_EVENT_ID)
    query = (
        select(JobEvent)
        .join(Job, Job.id == JobEvent.job_id)
        .where(Job.project == project, JobEvent.job_id == job_id, JobEvent.id > after)
    )
    if types is not None:
        query = query.where(JobEvent.type.in_(list(types)))
    return list(session.scalars(query.order_by(JobEvent.id).limit(limit)))


def last_event_id(session: Session, project: str, job_id: str) -> int:
    """The id of the job's newest event (0 when it has none)."""
    query = (
        select(func.max(JobEvent.id))
        .join(Job, Job.id == JobEvent.job_id)
        .where(Job.project == project, JobEvent.job_id == job_id)
    )
    return int(session.scalar(query) or 0)
