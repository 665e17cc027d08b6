"""A Celery worker's logs and metrics, hooked to Celery's signals by :func:`install` (``worker.celery_app``'s ``app``).

Logs: with ``FINETUNING_LOG_FORMAT=json`` the handlers Celery sets up (the root logger's and the task logger's)
write JSON lines. The job id is set for the whole of a ``jobs.run`` task (``task_prerun`` to ``task_postrun``) and
by the runner (``jobcore.logs.job_context``), so every line logged while a job is handled, by any logger,
Celery's own lines about the task included, carries ``job_id``; lines logged inside a task also carry ``task_id``
and ``task_name``. The engine's own output is not logged here: it is stored as the job's log events.

Metrics: with ``FINETUNING_WORKER_METRICS_PORT`` set, the worker's main process serves Prometheus metrics computed
from the database for the jobs this worker (its Celery node name) claimed: running jobs, jobs finished by kind and
status, their durations and the tokens per second of its running jobs. The database rather than counters in the
pool processes: jobs run in forked pool processes that die and are replaced (and the worker restarts), so
in-process counters would need prometheus_client's multiprocess mode (an environment variable set before any
import, a folder of files per pid cleaned up by hand) to add up; the database already holds every job's outcome,
times and metrics events, and the numbers survive any restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextvars import Token
from typing import Any

from celery import Celery, signals
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from jobcore.db import unpooled_sessions
from jobcore.logs import JOB_ID, JsonFormatter, redact_logs, use_json_logs
from jobcore.models import ACTIVE_STATUSES, TERMINAL_STATUSES
from jobcore.settings import ServiceSettings
from jobcore.stats import Cached, JobStats, histogram_family, query_job_stats, throughput_family
from worker.dispatch import TASK_NAME

logger = logging.getLogger(__name__)

_installed = threading.Lock()
_state: dict[str, Any] = {}


class TaskJsonFormatter(JsonFormatter):
    """The JSON lines, with the Celery task (id and name) a line was logged in, as Celery's own task format has."""

    def extra_fields(self, record: logging.LogRecord) -> dict[str, Any]:
        from celery._state import get_current_task

        task = get_current_task()
        if task is None or not getattr(task, "request", None) or task.request.id is None:
            return {}
        return {"task_id": task.request.id, "task_name": task.name}


def use_worker_json_logs(logger_: logging.Logger) -> None:
    """Switch ``logger_``'s handlers (as Celery set them up) to JSON lines."""
    use_json_logs([logger_], formatter=TaskJsonFormatter)


class WorkerCollector(Collector):
    """One Celery worker's view: the jobs last claimed by its node name, from the database (cached)."""

    def __init__(self, sessions: sessionmaker[Session], nodename: str, *, cache_seconds: float) -> None:
        self.sessions = sessions
        self.nodename = nodename
        self.cached = Cached(self._compute, cache_seconds, fork_safe=True)

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
        yield histogram_family(
            "finetuning_worker_job_duration_seconds",
            "Run time (finished_at - started_at) of the jobs this worker finished, by kind and final status.",
            stats.durations,
        )
        yield throughput_family("finetuning_worker_job_tokens_per_second", stats.throughput)


class MetricsServer:
    """The Prometheus endpoint of one worker process, serving a registry of its own."""

    def __init__(self, settings: ServiceSettings, nodename: str) -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        self.registry = CollectorRegistry()
        self.registry.register(
            WorkerCollector(
                unpooled_sessions(settings.database_url), nodename, cache_seconds=settings.metrics_cache_seconds
            )
        )
        self.server, self.thread = start_http_server(
            settings.worker_metrics_port, addr=settings.worker_metrics_host, registry=self.registry
        )

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def install(app: Celery, settings: ServiceSettings) -> None:
    """Connect the worker's logging and metrics hooks for ``app`` (once per process)."""
    with _installed:
        if _state.get("installed"):
            return
        _state["installed"] = True

    # the job id for the whole task, Celery's own lines about it ("Task jobs.run[...] succeeded in ...") included
    job_tokens: dict[str, Token[str | None]] = {}

    @signals.task_prerun.connect(weak=False)
    def _enter_job(task_id: str, task: Any, args: Any = (), **_: Any) -> None:
        if getattr(task, "name", None) == TASK_NAME and args:
            job_tokens[task_id] = JOB_ID.set(str(args[0]))

    @signals.task_postrun.connect(weak=False)
    def _leave_job(task_id: str, **_: Any) -> None:
        token = job_tokens.pop(task_id, None)
        if token is not None:
            JOB_ID.reset(token)

    @signals.after_setup_logger.connect(weak=False)
    def _root_logs(logger: logging.Logger, **_: Any) -> None:
        if settings.log_format == "json":
            use_worker_json_logs(logger)
        redact_logs([logger])

    @signals.after_setup_task_logger.connect(weak=False)
    def _task_logs(logger: logging.Logger, **_: Any) -> None:
        if settings.log_format == "json":
            use_worker_json_logs(logger)
        redact_logs([logger])

    if settings.worker_metrics_port:

        @signals.worker_ready.connect(weak=False)
        def _start_metrics(sender: Any, **_: Any) -> None:
            # the main process, once the pool has started; sender is the consumer
            if getattr(sender, "app", None) is not app or "server" in _state:
                return
            try:
                _state["server"] = server = MetricsServer(settings, str(sender.hostname))
            except OSError as exc:
                logger.error(
                    "worker metrics: cannot serve on %s:%d (%s); running without metrics",
                    settings.worker_metrics_host,
                    settings.worker_metrics_port,
                    exc,
                )
                return
            logger.info("worker metrics on http://%s:%d/metrics", settings.worker_metrics_host, server.port)

        @signals.worker_shutdown.connect(weak=False)
        def _stop_metrics(**_: Any) -> None:
            server = _state.pop("server", None)
            if server is not None:
                server.close()
