"""What the job database says about jobs, for Prometheus: counts by status, kind and queue, the oldest queued job,
durations of finished jobs and the latest tokens per second of running ones. The API reports all jobs, each worker the
jobs it claimed; both compute at scrape time from the database (the source of truth), cached, under a statement
timeout."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString
from sqlalchemy import ColumnElement, case, extract, func, select, text
from sqlalchemy.orm import Session

from finetuning.contract import EventType
from jobcore.models import ACTIVE_STATUSES, TERMINAL_STATUSES, Job, JobEvent, JobStatus

# Training jobs run from minutes to days; merges and conversions take seconds.
JOB_DURATION_BUCKETS = (10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 259200.0)
MAX_RUNNING_SERIES = 500  # tokens-per-second series at most (one per running job)
STATEMENT_TIMEOUT_MS = 5000
METRICS_EVENTS_SCANNED = 20  # recent `metrics` events looked at for a number (the last one is a null summary)


@dataclass
class DurationStats:
    """A histogram's data: cumulative counts per bucket bound (``JOB_DURATION_BUCKETS``), count and sum."""

    buckets: list[int]
    count: int
    total: float


@dataclass
class JobStats:
    """What one scrape reports about jobs; all of it from the database."""

    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (status, kind, queue) -> jobs
    oldest_queued: dict[str, datetime] = field(default_factory=dict)  # queue -> created_at of its oldest queued job
    durations: dict[tuple[str, str], DurationStats] = field(default_factory=dict)  # (kind, status) of finished jobs
    throughput: list[tuple[str, str, str, float]] = field(default_factory=list)  # (job id, kind, queue, tokens/s)


def _duration_seconds(session: Session) -> ColumnElement[Any] | None:
    """``finished_at - started_at`` in seconds, in SQL; None for a database this service does not run on."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return extract("epoch", Job.finished_at - Job.started_at)
    if dialect == "sqlite":
        return (func.julianday(Job.finished_at) - func.julianday(Job.started_at)) * 86400.0
    return None


def _worker_filter(worker: str | None) -> list[ColumnElement[bool]]:
    # a job records its claimant as "<celery nodename>:<pool process pid>"
    return [] if worker is None else [Job.worker.startswith(f"{worker}:", autoescape=True)]


def _tokens_per_second(session: Session, job_id: str) -> float | None:
    rows = session.execute(
        select(JobEvent.data)
        .where(JobEvent.job_id == job_id, JobEvent.type == EventType.METRICS)
        .order_by(JobEvent.id.desc())
        .limit(METRICS_EVENTS_SCANNED)
    ).scalars()
    for data in rows:
        value = data.get("tokens_per_second") if isinstance(data, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def query_job_stats(session: Session, *, worker: str | None = None) -> JobStats:
    """Jobs by (status, kind, queue), the oldest queued job per queue, durations of finished jobs and the latest
    tokens per second of running ones; only the jobs last claimed by Celery node ``worker`` when given."""
    stats = JobStats()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))  # a slow scrape gives up
    only = _worker_filter(worker)
    for status, kind, queue, count in session.execute(
        select(Job.status, Job.kind, Job.queue, func.count()).where(*only).group_by(Job.status, Job.kind, Job.queue)
    ):
        stats.counts[(status, kind, queue)] = int(count)
    if worker is None:
        for queue, oldest in session.execute(
            select(Job.queue, func.min(Job.created_at)).where(Job.status == JobStatus.QUEUED.value).group_by(Job.queue)
        ):
            if oldest is not None:
                stats.oldest_queued[queue] = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
    duration = _duration_seconds(session)
    if duration is not None:
        columns = [func.sum(case((duration <= bound, 1), else_=0)) for bound in JOB_DURATION_BUCKETS]
        finished = (Job.status.in_(TERMINAL_STATUSES), Job.started_at.is_not(None), Job.finished_at.is_not(None))
        for kind, status, count, total, *buckets in session.execute(
            select(Job.kind, Job.status, func.count(), func.sum(duration), *columns)
            .where(*finished, *only)
            .group_by(Job.kind, Job.status)
        ):
            stats.durations[(kind, status)] = DurationStats(
                [int(b or 0) for b in buckets], int(count), float(total or 0)
            )
    running = session.execute(
        select(Job.id, Job.kind, Job.queue)
        .where(Job.status.in_(ACTIVE_STATUSES), *only)
        .order_by(Job.started_at)
        .limit(MAX_RUNNING_SERIES)
    ).all()
    for job_id, kind, queue in running:
        value = _tokens_per_second(session, job_id)
        if value is not None:
            stats.throughput.append((job_id, kind, queue, value))
    return stats


class Cached:
    """A value recomputed at most every ``seconds``; one computation at a time. With ``fork_safe`` (Celery's main
    process forks its pool) the lock is also held across ``fork``, so no child starts in the middle of a query."""

    def __init__(self, compute: Callable[[], Any], seconds: float, *, fork_safe: bool = False) -> None:
        self.compute = compute
        self.seconds = seconds
        self.lock = threading.Lock()
        self.at = -math.inf
        self.value: Any = None
        if fork_safe and hasattr(os, "register_at_fork"):
            # methods, not self.lock's: a child replaces its lock, and its own forks must take the new one
            os.register_at_fork(
                before=self._before_fork, after_in_parent=self._after_fork_in_parent, after_in_child=self._new_lock
            )

    def _before_fork(self) -> None:
        self.lock.acquire()

    def _after_fork_in_parent(self) -> None:
        self.lock.release()

    def _new_lock(self) -> None:
        self.lock = threading.Lock()

    def get(self) -> Any:
        with self.lock:
            now = time.monotonic()
            if now - self.at >= self.seconds:
                self.value = self.compute()
                self.at = now
            return self.value


def histogram_family(name: str, doc: str, durations: dict[tuple[str, str], DurationStats]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["kind", "status"])
    for (kind, status), stats in sorted(durations.items()):
        buckets = [(floatToGoString(b), float(n)) for b, n in zip(JOB_DURATION_BUCKETS, stats.buckets, strict=True)]
        family.add_metric([kind, status], [*buckets, ("+Inf", float(stats.count))], stats.total)
    return family


def throughput_family(name: str, values: list[tuple[str, str, str, float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        name,
        "Training tokens per second of a running job: the engine's latest metrics event that reported it.",
        labels=["job_id", "kind", "queue"],
    )
    for job_id, kind, queue, value in values:
        family.add_metric([job_id, kind, queue], value)
    return family
