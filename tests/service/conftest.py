"""Real services for the service tests: a fresh Postgres database per run (migrated with Alembic), a Redis
database of its own, a real Celery worker process, and the tiny model under an allowed root.

The servers come from ``FINETUNING_TEST_POSTGRES`` (a server URL, default ``postgresql+psycopg://postgres@127.0.0.1:5432``)
and ``FINETUNING_TEST_REDIS`` (default ``redis://127.0.0.1:6379``); ``make test`` starts them when they don't answer.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import services
from api.main import create_app
from jobcore.db import session_scope
from jobcore.models import Job
from jobcore.settings import ServiceSettings
from tests.service.api_helpers import Caller, allowed_root, sft_body
from tests.workers import spawn_worker, stop_worker, wait_answering

REPO_ROOT = Path(__file__).resolve().parents[2]
POSTGRES = os.environ.get("FINETUNING_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
REDIS = os.environ.get("FINETUNING_TEST_REDIS", "redis://127.0.0.1:6379")


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The Postgres server URL, without a database name."""
    return POSTGRES


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A new database for this test run, migrated to head; dropped afterwards."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    name = f"finetuning_test_{secrets.token_hex(4)}"
    admin = create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"{POSTGRES}/{name}"
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")
    yield url
    from jobcore.db import engine_for

    engine_for(url).dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    """A Redis database number of its own (flushed before and after), so parallel runs don't share queues."""
    import redis

    number = 1 + secrets.randbelow(15)
    url = f"{REDIS}/{number}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def service_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service")


@pytest.fixture(scope="session")
def settings(database_url: str, broker_url: str, service_root: Path, tiny_model_dir: Path) -> ServiceSettings:
    """Settings for the API and the worker; the tiny model's cache and the test data folder are allowed roots."""
    data_root = service_root / "data"
    data_root.mkdir(exist_ok=True)
    return ServiceSettings(
        database_url=database_url,
        broker_url=broker_url,
        artifact_root=service_root / "artifacts",
        allowed_roots=[tiny_model_dir.parent, data_root],
        allow_hub_models=False,
        default_queue=f"test-{secrets.token_hex(3)}",
        lease_seconds=20,
        heartbeat_seconds=1.0,
        cancel_grace_seconds=2.0,
        # the workers' own recovery passes would race the tests that call recover() directly
        recovery_seconds=3600.0,
        # revocation takes effect at once (test_api covers the cache on its own)
        token_cache_seconds=0,
        # the webhook tests' receivers listen on 127.0.0.1; their retries come within a second
        webhook_allowed_hosts=["127.0.0.1"],
        webhook_retry_seconds=0.2,
        webhook_retry_max_seconds=1.0,
        webhook_poll_seconds=0.2,
        webhook_timeout_seconds=5.0,
    )


def settings_env(settings: ServiceSettings) -> dict[str, str]:
    """The environment that gives another process (worker, API server) these settings."""
    import json

    return {
        "FINETUNING_DATABASE_URL": settings.database_url,
        "FINETUNING_BROKER_URL": settings.broker_url,
        "FINETUNING_ARTIFACT_ROOT": str(settings.artifact_root),
        "FINETUNING_WORK_ROOT": str(settings.work_root),
        "FINETUNING_ALLOWED_ROOTS": json.dumps([str(p) for p in settings.allowed_roots]),
        "FINETUNING_ALLOW_HUB_MODELS": str(settings.allow_hub_models).lower(),
        "FINETUNING_DEFAULT_QUEUE": settings.default_queue,
        "FINETUNING_LEASE_SECONDS": str(settings.lease_seconds),
        "FINETUNING_HEARTBEAT_SECONDS": str(settings.heartbeat_seconds),
        "FINETUNING_CANCEL_GRACE_SECONDS": str(settings.cancel_grace_seconds),
        "FINETUNING_RECOVERY_SECONDS": str(settings.recovery_seconds),
        "FINETUNING_BROKER_VISIBILITY_TIMEOUT_SECONDS": str(settings.broker_visibility_timeout_seconds),
        "FINETUNING_WEBHOOK_ALLOWED_HOSTS": json.dumps(settings.webhook_allowed_hosts),
        "FINETUNING_WEBHOOK_RETRY_SECONDS": str(settings.webhook_retry_seconds),
        "FINETUNING_WEBHOOK_RETRY_MAX_SECONDS": str(settings.webhook_retry_max_seconds),
        "FINETUNING_WEBHOOK_POLL_SECONDS": str(settings.webhook_poll_seconds),
        "FINETUNING_WEBHOOK_TIMEOUT_SECONDS": str(settings.webhook_timeout_seconds),
    }


@pytest.fixture(scope="session")
def data_dir(settings: ServiceSettings) -> Path:
    """An allowed root to write test data sets into."""
    return allowed_root(settings, 1)


def start_worker(
    settings: ServiceSettings, log_path: Path, *, hostname: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A real Celery worker process consuming the test queue (with ``env`` added to its environment); returns once
    it answers a ping."""
    from worker.celery_app import create_celery

    env = {**os.environ, **settings_env(settings), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
    process = spawn_worker(env, settings.default_queue, hostname, log_path)
    if wait_answering(create_celery(settings), [hostname], 60, alive=lambda _: process.poll() is None):
        process.kill()
        raise RuntimeError(f"the Celery worker did not answer within 60 s: see {log_path}")
    if process.poll() is not None:
        raise RuntimeError(f"the Celery worker exited: see {log_path}")
    return process


@pytest.fixture(scope="session")
def celery_worker(settings: ServiceSettings, service_root: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = start_worker(settings, service_root / "worker.log", hostname=f"test-{secrets.token_hex(3)}@localhost")
    yield process
    stop_worker(process)


@pytest.fixture(scope="session")
def base_url(settings: ServiceSettings, celery_worker: subprocess.Popen[bytes]) -> Iterator[str]:
    """The API served by a real uvicorn on a free port (in a thread), with a real worker behind it."""
    import socket
    import threading

    import uvicorn

    from api.main import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


# -- the API without a worker (tests/service/test_api_*.py) ----------------------------------------------------


@pytest.fixture(scope="module")
def app_client(settings: ServiceSettings) -> Iterator[TestClient]:
    # fast stream timings, so SSE and follow tests take fractions of a second
    app = create_app(settings, heartbeat_seconds=0.2, poll_seconds=0.02)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, bool]]:
    """Replaces the enqueue hook; records (job id, queue, whether the job was already committed)."""
    calls: list[tuple[str, str, bool]] = []

    def record(app_settings: ServiceSettings, job_id: str, queue: str) -> None:
        with session_scope(app_settings.database_url) as session:  # another connection sees only committed rows
            committed = session.get(Job, job_id) is not None
        calls.append((job_id, queue, committed))

    monkeypatch.setattr(services, "enqueue_job", record)
    return calls


@pytest.fixture
def caller(app_client: TestClient, settings: ServiceSettings, enqueued: list[Any]) -> Caller:
    return Caller(app_client, settings)


@pytest.fixture
def other(app_client: TestClient, settings: ServiceSettings) -> Caller:
    return Caller(app_client, settings)


@pytest.fixture(scope="module")
def data_file(data_dir: Path) -> Path:
    path = data_dir / "chat.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    return path


@pytest.fixture
def body(tiny_model_dir: Path, data_file: Path) -> dict[str, Any]:
    return sft_body(tiny_model_dir, data_file)
