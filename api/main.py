"""The FastAPI app: ``create_app(settings)`` builds it (no import-time globals).

Serve it with ``uvicorn --factory api.main:create_app``; settings come from the environment (``FINETUNING_*``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from api import routes
from api.auth import TokenCache
from api.deps import Database
from api.errors import install_error_handlers
from api.middleware import BodyLimitMiddleware, InFlightLimitMiddleware, NulCharacterMiddleware
from api.observability import RequestContextMiddleware
from api.openapi import install_openapi
from api.schemas import MLFLOW_UI_URL
from api.streams import EventHub, StreamTiming
from jobcore.db import libpq_url, session_factory
from jobcore.logs import redact_logs, use_json_logs
from jobcore.settings import ServiceSettings, get_settings
from jobcore.webhooks.sender import start_sender_thread

logger = logging.getLogger("api")

TAGS = [
    {"name": "jobs", "description": "Submit finetuning, merge, adapter-conversion and generate jobs; read, cancel."},
    {"name": "events", "description": "Follow a job: its events (paged or Server-Sent Events), log, metrics, output."},
    {"name": "health", "description": "Liveness and readiness."},
    {
        "name": "webhooks",
        "description": "Endpoints that receive the project's job events (job.started, job.checkpoint_saved, job.eval, "
        "job.succeeded, job.failed, job.cancelled), signed the Standard Webhooks way, with a delivery log.",
    },
]
# uvicorn's loggers have handlers of their own (and do not propagate): JSON logs reformat them too
SERVER_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access")
DESCRIPTION = """Runs the finetuning engine's jobs on GPU workers.

Every `/v1` route needs `Authorization: Bearer <token>` (tokens: `finetuning-admin token create --project NAME`) and
sees only the jobs of the token's project. Every error answers `{"error": {"code", "message", "param"}}`.
"""


def _operation_id(route: APIRoute) -> str:
    # the handler's name (submit_sft_job, get_job, ...): reads naturally as a generated client's method
    return route.name


def create_app(
    settings: ServiceSettings | None = None,
    *,
    heartbeat_seconds: float = 15.0,
    poll_seconds: float = 0.3,
) -> FastAPI:
    """The API app for ``settings`` (default: from the environment). The timings pace the live streams."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # here rather than in create_app: the server configures its logging after building the app
        if settings.log_format == "json":
            use_json_logs(SERVER_LOGGERS)
        redact_logs(("", *SERVER_LOGGERS))
        if settings.auth_disabled:
            logger.warning(
                "!!! AUTHENTICATION IS DISABLED (FINETUNING_AUTH_DISABLED): anyone who can reach this API acts as "
                "project 'default'. Use this for a local demo only. !!!"
            )
        listener = asyncio.get_running_loop().create_task(app.state.event_hub.listen())
        # every API process sends webhooks too (as every worker does): they go out even while no worker runs
        stop_sender = start_sender_thread(settings) if settings.webhook_sender else None
        try:
            yield
        finally:
            listener.cancel()
            if stop_sender is not None:
                stop_sender.set()

    app = FastAPI(
        title="Silogen finetuning",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.settings = settings
    app.state.sessions = session_factory(settings.database_url, settings.db_pool_size)
    app.state.database = Database(
        app.state.sessions, slots=settings.db_pool_size, wait_seconds=settings.db_wait_seconds
    )
    app.state.token_cache = TokenCache(settings.token_cache_seconds)
    app.state.event_hub = EventHub(
        app.state.database,
        StreamTiming(poll_seconds=poll_seconds, heartbeat_seconds=heartbeat_seconds),
        listen_url=libpq_url(settings.database_url),
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(NulCharacterMiddleware)
    app.add_middleware(InFlightLimitMiddleware, limit=settings.max_requests_in_flight)
    app.include_router(routes.health.router)
    app.include_router(routes.v1_router)
    app.include_router(routes.ui.router)
    http_metrics = None
    if settings.metrics_enabled:
        from api.metrics import install_metrics  # Prometheus only where metrics are served

        http_metrics = install_metrics(app, settings)
    # outermost: it sees every answer (a 413 of the body limit too), gives each request its id (logs, the
    # X-Request-ID header) and the job id of its route, and records the request's metrics
    app.add_middleware(
        RequestContextMiddleware,
        record=http_metrics.record if http_metrics else None,
        context=[(MLFLOW_UI_URL, settings.mlflow_ui_url)],
    )
    install_openapi(app, TAGS)
    return app
