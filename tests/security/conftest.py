"""Security tests: fuzzing the HTTP API (schemathesis) and the config parser (hypothesis), and path confinement.

The API runs in process (ASGI) against the real Postgres of the service tests (a database of its own, made by the
service fixtures), with no worker anywhere: submitted jobs are stored and stay queued. The enqueue hook is replaced by
a counter, so nothing reaches the broker either; the default queue is one no worker consumes, as a second guard.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from security_helpers import FUZZ_STATS

from api import services
from jobcore.settings import ServiceSettings
from tests.service.api_helpers import allowed_root

# the Postgres database and Redis number of the service tests' fixtures (migrated with Alembic, dropped afterwards)
from tests.service.conftest import broker_url, database_url  # noqa: F401


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FUZZ_STATS.requests:
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(FUZZ_STATS.by_status.items()))
        terminalreporter.write_line(
            f"API fuzz: {FUZZ_STATS.requests} requests, {FUZZ_STATS.server_errors} server errors ({statuses})"
        )


@pytest.fixture(scope="session")
def security_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("security")


@pytest.fixture(scope="session")
def settings(database_url: str, broker_url: str, security_root: Path) -> ServiceSettings:  # noqa: F811
    """Two allowed roots (models, data) beside the artifact root; hub ids and remote code refused."""
    for name in ("models", "data"):
        (security_root / name).mkdir(exist_ok=True)
    return ServiceSettings(
        database_url=database_url,
        broker_url=broker_url,
        artifact_root=security_root / "artifacts",
        allowed_roots=[security_root / "models", security_root / "data"],
        allow_hub_models=False,
        allow_trust_remote_code=False,
        default_queue=f"security-unconsumed-{secrets.token_hex(3)}",
        metrics_enabled=True,
        # fuzzed submissions stay queued: the per-project limits (429) would stop accepting them part way
        max_queued_jobs_per_project=0,
        max_active_jobs_per_project=0,
    )


@pytest.fixture(scope="session")
def model_dir(settings: ServiceSettings) -> Path:
    """A model folder under an allowed root: the API checks that it exists, it never loads it."""
    path = allowed_root(settings, 0) / "tiny"
    path.mkdir(exist_ok=True)
    (path / "config.json").write_text("{}")
    return path


@pytest.fixture(scope="session")
def data_file(settings: ServiceSettings) -> Path:
    path = allowed_root(settings, 1) / "chat.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    return path


@pytest.fixture(scope="module")
def enqueued() -> Iterator[list[str]]:
    """The enqueue hook, replaced for the module's tests (never beyond: the service tests need the real one): job ids
    are recorded, nothing is sent to any queue."""
    calls: list[str] = []

    def record(_settings: ServiceSettings, job_id: str, _queue: str) -> None:
        calls.append(job_id)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services, "enqueue_job", record)
        yield calls


@pytest.fixture(scope="module")
def app(settings: ServiceSettings, enqueued: list[str]) -> FastAPI:
    from api.main import create_app

    # fast stream timings: the SSE and log routes of finished jobs end at once, heartbeats never wait long
    return create_app(settings, heartbeat_seconds=0.05, poll_seconds=0.01)
