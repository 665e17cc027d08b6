"""Every job and event query, always filtered by the caller's project: another project's job is simply not found.

Plain functions over a session; no commits (the request's session dependency owns the transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from api.models import Job, JobEvent


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


def add_job(session: Session, job: Job) -> None:
    session.add(job)


def add_event(session: Session, job: Job, type_: str, data: dict[str, Any]) -> JobEvent:
    event = JobEvent(job_id=job.id, type=type_, data=data)
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
    query = (
        select(JobEvent)
        .join(Job, Job.id == JobEvent.job_id)
        .where(Job.project == project, JobEvent.job_id == job_id, JobEvent.id > after)
    )
    if types is not None:
        query = query.where(JobEvent.type.in_(list(types)))
    return list(session.scalars(query.order_by(JobEvent.id).limit(limit)))
