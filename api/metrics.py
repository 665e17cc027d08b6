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
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import Response

from jobcore.models import JobStatus
from jobcore.stats import Cached, JobStats, histogram_family, query_job_stats, throughput_family

if TYPE_CHECKING:
    from fastapi import FastAPI

    from jobcore.settings import ServiceSettings

logger = logging.getLogger(__name__)

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
        self.cached = Cached(self._compute, cache_seconds)

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
        yield histogram_family(
            "finetuning_job_duration_seconds",
            "Run time (finished_at - started_at) of finished jobs that started, by kind and final status.",
            stats.durations,
        )
        yield throughput_family("finetuning_job_tokens_per_second", stats.throughput)


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
