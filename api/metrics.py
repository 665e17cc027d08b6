"""Prometheus metrics: the API's HTTP requests, and the jobs as the database records them.

Each app (and each worker) has a registry of its own, so ``create_app`` can be called any number of times.

Job metrics are computed at scrape time from the database, the source of truth, rather than counted in processes:
they survive restarts, need no shared files between Celery's pool processes, and every API replica reports the same
values (aggregate them with ``max``, or scrape one replica). Three grouped queries and one indexed lookup per running
job answer them, under a 5 s statement timeout on Postgres, and the result is reused for ``metrics_cache_seconds``,
so scrapes cannot hammer the database. The duration histograms count every finished job the database holds, so they
only grow (deleting old jobs reads as a counter reset). ``GET /metrics`` needs no token: keep it off public networks.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import ColumnElement, case, extract, func, select, text
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import Response

from api.models import TERMINAL_STATUSES, Job, JobEvent, JobStatus

if TYPE_CHECKING:
    from fastapi import FastAPI

    from api.settings import ServiceSettings

logger = logging.getLogger(__name__)

# Training jobs run from minutes to days; merges and conversions take seconds.
JOB_DURATION_BUCKETS = (10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 259200.0)
ACTIVE_STATUSES = (JobStatus.RUNNING.value, JobStatus.CANCEL_REQUESTED.value)
MAX_RUNNING_SERIES = 500  # tokens-per-second series at most (one per running job)
STATEMENT_TIMEOUT_MS = 5000
METRICS_EVENTS_SCANNED = 20  # recent `metrics` events looked at for a number (the last one is a null summary)
# Kombu's Redis transport keeps a queue's messages of priority p > 0 in the list "<queue>\x06\x16<p>"
_REDIS_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


# -- HTTP --------------------------------------------------------------------------------------------------------------


class HttpMetrics:
    """``finetuning_http_requests_total{method,route,status}`` and
    ``finetuning_http_request_duration_seconds{method,route}``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "finetuning_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "finetuning_http_request_duration_seconds",
            "Seconds until the response started (for a stream: until it started), by method and route template.",
            ["method", "route"],
            registry=registry,
        )

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)


# -- the jobs, from the database ---------------------------------------------------------------------------------------


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
        .where(JobEvent.job_id == job_id, JobEvent.type == "metrics")
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


def redis_queue_lengths(broker_url: str, queues: Sequence[str], timeout_s: float = 1.0) -> dict[str, int] | None:
    """Messages waiting in each queue of a Redis broker (LLEN of its lists; messages a worker has taken are not
    counted); None for another broker."""
    if not broker_url.startswith(("redis://", "rediss://", "unix://")) or not queues:
        return None
    import redis

    client = redis.Redis.from_url(broker_url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        pipe = client.pipeline(transaction=False)
        for queue in queues:
            for suffix in _REDIS_PRIORITY_SUFFIXES:
                pipe.llen(queue + suffix)
        lengths = pipe.execute()
    finally:
        client.close()
    per = len(_REDIS_PRIORITY_SUFFIXES)
    return {queue: sum(int(n) for n in lengths[i * per : (i + 1) * per]) for i, queue in enumerate(queues)}


class _Cached:
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


def _histogram(name: str, doc: str, durations: dict[tuple[str, str], DurationStats]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["kind", "status"])
    for (kind, status), stats in sorted(durations.items()):
        buckets = [(floatToGoString(b), float(n)) for b, n in zip(JOB_DURATION_BUCKETS, stats.buckets, strict=True)]
        family.add_metric([kind, status], [*buckets, ("+Inf", float(stats.count))], stats.total)
    return family


class JobCollector(Collector):
    """The API's view of all jobs, computed at scrape time from the database (cached ``cache_seconds``)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        default_queue: str,
        broker_url: str,
        cache_seconds: float,
    ) -> None:
        self.sessions = sessions
        self.default_queue = default_queue
        self.broker_url = broker_url
        self.cached = _Cached(self._compute, cache_seconds)

    def _compute(self) -> tuple[JobStats | None, dict[str, int] | None]:
        try:
            with self.sessions() as session:
                stats = query_job_stats(session)
        except Exception as exc:
            logger.warning("metrics: the job database did not answer: %s: %s", type(exc).__name__, exc)
            return None, None
        queues = sorted({queue for (_, _, queue) in stats.counts} | {self.default_queue})
        try:
            broker = redis_queue_lengths(self.broker_url, queues)
        except Exception as exc:
            logger.warning("metrics: the broker did not answer: %s", type(exc).__name__)
            broker = None
        return stats, broker

    def collect(self) -> Iterator[Metric]:
        stats, broker = self.cached.get()
        up = GaugeMetricFamily("finetuning_database_up", "1 when the job database answered the metrics query.")
        up.add_metric([], 1.0 if stats is not None else 0.0)
        yield up
        if stats is None:
            return
        jobs = GaugeMetricFamily(
            "finetuning_jobs", "Jobs in the database by status, kind and queue.", labels=["status", "kind", "queue"]
        )
        for kind, queue in sorted({(k, q) for (_, k, q) in stats.counts}):
            for status in JobStatus:
                jobs.add_metric([status.value, kind, queue], float(stats.counts.get((status.value, kind, queue), 0)))
        yield jobs
        queues = sorted({queue for (_, _, queue) in stats.counts} | {self.default_queue})
        depth = GaugeMetricFamily(
            "finetuning_queue_depth", "Jobs waiting for a worker (status queued), by queue.", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "finetuning_queue_oldest_job_age_seconds",
            "How long the oldest queued job of a queue has waited; 0 when none waits.",
            labels=["queue"],
        )
        now = datetime.now(UTC)
        for queue in queues:
            waiting = sum(n for (s, _, q), n in stats.counts.items() if q == queue and s == JobStatus.QUEUED.value)
            depth.add_metric([queue], float(waiting))
            oldest = stats.oldest_queued.get(queue)
            age.add_metric([queue], max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)
        yield depth
        yield age
        if broker is not None:
            length = GaugeMetricFamily(
                "finetuning_broker_queue_length",
                "Messages waiting in the Redis broker's list of a queue (taken, unacknowledged ones not included).",
                labels=["queue"],
            )
            for queue, n in sorted(broker.items()):
                length.add_metric([queue], float(n))
            yield length
        yield _histogram(
            "finetuning_job_duration_seconds",
            "Run time (finished_at - started_at) of finished jobs that started, by kind and final status.",
            stats.durations,
        )
        yield _throughput("finetuning_job_tokens_per_second", stats.throughput)


def _throughput(name: str, values: list[tuple[str, str, str, float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        name,
        "Training tokens per second of a running job: the engine's latest metrics event that reported it.",
        labels=["job_id", "kind", "queue"],
    )
    for job_id, kind, queue, value in values:
        family.add_metric([job_id, kind, queue], value)
    return family


class WorkerCollector(Collector):
    """One Celery worker's view: the jobs last claimed by its node name, from the database (cached)."""

    def __init__(self, sessions: sessionmaker[Session], nodename: str, *, cache_seconds: float) -> None:
        self.sessions = sessions
        self.nodename = nodename
        self.cached = _Cached(self._compute, cache_seconds, fork_safe=True)

    def _compute(self) -> JobStats | None:
        try:
            with self.sessions() as session:
                return query_job_stats(session, worker=self.nodename)
        except Exception as exc:
            logger.warning("metrics: the job database did not answer: %s: %s", type(exc).__name__, exc)
            return None

    def collect(self) -> Iterator[Metric]:
        stats: JobStats | None = self.cached.get()
        up = GaugeMetricFamily("finetuning_worker_database_up", "1 when the job database answered the metrics query.")
        up.add_metric([], 1.0 if stats is not None else 0.0)
        yield up
        if stats is None:
            return
        running = GaugeMetricFamily("finetuning_worker_running_jobs", "Jobs this worker is running (or cancelling).")
        running.add_metric([], float(sum(n for (s, _, _), n in stats.counts.items() if s in ACTIVE_STATUSES)))
        yield running
        finished = CounterMetricFamily(
            "finetuning_worker_jobs", "Jobs this worker finished, by kind and final status.", labels=["kind", "status"]
        )
        totals: dict[tuple[str, str], int] = {}
        for (status, kind, _), n in stats.counts.items():
            if status in TERMINAL_STATUSES:
                totals[(kind, status)] = totals.get((kind, status), 0) + n
        for (kind, status), n in sorted(totals.items()):
            finished.add_metric([kind, status], float(n))
        yield finished
        yield _histogram(
            "finetuning_worker_job_duration_seconds",
            "Run time (finished_at - started_at) of the jobs this worker finished, by kind and final status.",
            stats.durations,
        )
        yield _throughput("finetuning_worker_job_tokens_per_second", stats.throughput)


# -- the API's /metrics ------------------------------------------------------------------------------------------------


def install_metrics(app: FastAPI, settings: ServiceSettings) -> HttpMetrics:
    """A registry of the app's own with the HTTP metrics and the jobs collector, served at ``GET /metrics`` (not in
    the OpenAPI document, no token). Returns the HTTP metrics for the request middleware to record into."""
    registry = CollectorRegistry()
    http = HttpMetrics(registry)
    registry.register(
        JobCollector(
            app.state.sessions,
            default_queue=settings.default_queue,
            broker_url=settings.broker_url,
            cache_seconds=settings.metrics_cache_seconds,
        )
    )
    app.state.metrics_registry = registry

    def get_metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(content=encoder(registry), media_type=content_type)

    app.add_api_route("/metrics", get_metrics, methods=["GET"], include_in_schema=False, name="get_metrics")
    return http
