"""Schemathesis over the whole OpenAPI document, against the real app and Postgres (in process, ASGI).

Every operation gets generated path/query parameters, headers and bodies (JSON and, where the document declares it,
YAML), valid and invalid. Checks: no 5xx, and the answer conforms to the document (status code, content type,
headers, body schema). Requests carry a real project token; a second pass sends none and expects 401 on /v1.

What a fuzzer submits is stored and stays queued: no worker reads this database, the enqueue hook only records (see
conftest.py), and the service's default queue here is one no worker consumes.

Size: ``FUZZ_EXAMPLES`` examples per operation and phase (default 12: a few hundred requests in ``make test``;
``FUZZ_PROFILE=full``, as ``make fuzz`` sets it: 150, 3,000 requests or more). ``FUZZ_COVERAGE=1`` adds schemathesis'
coverage phase (boundary values and negations of every field of the config schemas: tens of thousands of requests).
The request count and the server errors are printed in the test summary.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from security_helpers import FUZZ_STATS, make_token, new_project
from sqlalchemy import select

from jobcore.db import session_scope
from jobcore.models import Job, JobEvent, JobKind, JobStatus, new_id, utcnow
from jobcore.settings import ServiceSettings

FULL = os.environ.get("FUZZ_PROFILE") == "full"
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or (150 if FULL else 12))
FUZZ_COVERAGE = os.environ.get("FUZZ_COVERAGE", "0") == "1"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class CountingApp:
    """The app under test, set by a fixture (the schema is loaded at import, before fixtures exist); counts every HTTP
    request that reaches it (schemathesis' own probes included) and its status."""

    app: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "the fuzz_app fixture sets the app"
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counted(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                FUZZ_STATS.record(int(message["status"]))
                if message["status"] >= 500:
                    FUZZ_STATS.failures.append(f"{scope['method']} {scope['path']} -> {message['status']}")
            await send(message)

        await self.app(scope, receive, counted)


def _insert_finished_jobs(settings: ServiceSettings, project: str, artifacts: Path) -> list[str]:
    """Finished jobs of every kind, with events: streams of a finished job end, so a fuzzer can follow them."""
    output = artifacts / "fuzz-output.yaml"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("- prompt: hi\n  answer: hello\n")
    ids = []
    with session_scope(settings.database_url) as session:
        for kind, status in [
            (JobKind.GENERATE, JobStatus.SUCCEEDED),
            (JobKind.SFT, JobStatus.FAILED),
            (JobKind.MERGE, JobStatus.CANCELLED),
            (JobKind.DPO, JobStatus.SUCCEEDED),
        ]:
            job_id = new_id()
            session.add(
                Job(
                    id=job_id,
                    project=project,
                    kind=kind.value,
                    status=status.value,
                    queue="none",
                    labels={"fuzz": "yes"},
                    config={},
                    resolved={"config": {}},
                    artifacts={"output": str(output)} if kind == JobKind.GENERATE else {},
                    finished_at=utcnow(),
                )
            )
            session.flush()
            session.add_all(
                [
                    JobEvent(job_id=job_id, type="job", data={"status": "running", "attempt": 1}),
                    JobEvent(job_id=job_id, type="log", data={"line": "hello"}),
                    JobEvent(job_id=job_id, type="metrics", data={"step": 1, "loss": 1.5, "learning_rate": 0.1}),
                    JobEvent(job_id=job_id, type="eval", data={"step": 1, "metrics": {"eval_loss": 2.0}}),
                    JobEvent(job_id=job_id, type="job", data={"status": status.value, "attempt": 1}),
                ]
            )
            ids.append(job_id)
    return ids


@pytest.fixture(scope="session")
def fuzz_project(settings: ServiceSettings) -> tuple[str, str, list[str]]:
    """(project, token, ids of its finished jobs)."""
    project = new_project()
    token = make_token(settings, project)
    return project, token, _insert_finished_jobs(settings, project, settings.job_folder("fuzz"))


def _document() -> dict[str, Any]:
    # the app's own document (the app only connects to a database when it serves a request); loaded at import, as
    # schemathesis' pytest plugin needs the operations at collection time. Requests go to the fixture's app.
    from api.main import create_app

    settings = ServiceSettings(database_url="sqlite:///:memory:", broker_url="memory://")
    return create_app(settings).openapi()


schema = schemathesis.openapi.from_dict(_document())
APP = CountingApp()
schema.app = APP  # every request (checks' probes too) goes to the app in process, through the ASGI transport
# the coverage phase (boundary values and negations of every field of the big config schemas: ~15,000 requests)
# only in the full run
schema.config.phases.coverage.enabled = FUZZ_COVERAGE
KNOWN_JOB_IDS: list[str] = []  # filled by the fuzz_app fixture, before any case is generated


@schema.hook
def flatmap_path_parameters(_context: schemathesis.HookContext, path_parameters: dict[str, Any]) -> Any:
    # about half the time an existing (finished) job of the caller's project, so the routes get past their 404
    if not path_parameters or "job_id" not in path_parameters or not KNOWN_JOB_IDS:
        return st.just(path_parameters)
    known = [{**path_parameters, "job_id": job_id} for job_id in KNOWN_JOB_IDS]
    return st.one_of(st.just(path_parameters), st.sampled_from(known))


MODEL_KEYS = frozenset({"model", "base_model", "adapter", "tokenizer", "name_or_path"})
KNOWN_PATHS: dict[str, str] = {}  # "model" and "data": an allowed folder and file, set by the fuzz_app fixture


def with_allowed_paths(value: Any) -> Any:
    """``value`` with every string that names a model or a data file replaced by an allowed one, so that some
    generated submissions get past path resolution and are accepted (they are stored; nothing runs them)."""
    if isinstance(value, list):
        return [with_allowed_paths(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in MODEL_KEYS and isinstance(item, str):
            out[key] = KNOWN_PATHS["model"]
        elif key == "path" and isinstance(item, str):
            out[key] = KNOWN_PATHS["data"]
        elif key in ("trust_remote_code", "resume_from_checkpoint"):
            out[key] = False
        else:
            out[key] = with_allowed_paths(item)
    return out


@schema.hook
def flatmap_body(_context: schemathesis.HookContext, body: Any) -> Any:
    if not isinstance(body, dict) or not KNOWN_PATHS:
        return st.just(body)
    return st.one_of(st.just(body), st.just(with_allowed_paths(body)))


@pytest.fixture(scope="module")
def fuzz_app(app: FastAPI, fuzz_project: tuple[str, str, list[str]], model_dir: Path, data_file: Path) -> CountingApp:
    KNOWN_JOB_IDS[:] = fuzz_project[2]
    KNOWN_PATHS.update(model=str(model_dir), data=str(data_file))
    APP.app = app
    return APP


@schema.parametrize()
@hypothesis.settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=not FULL,  # the same requests on every `make test`; new ones on every `make fuzz`
)
def test_api_fuzz_with_a_token(
    case: schemathesis.Case, fuzz_app: CountingApp, fuzz_project: tuple[str, str, list[str]]
) -> None:
    headers = {"Authorization": f"Bearer {fuzz_project[1]}"}
    response = case.call(headers=headers)
    checks = CHECKS
    if response.headers.get("content-type", [""])[0].startswith("text/event-stream"):
        # the document gives an event stream the schema {type: string}; schemathesis reads that as the schema of
        # each parsed event (an object), so the body check does not apply to streams
        checks = [check for check in CHECKS if check is not response_schema_conformance]
    case.validate_response(response, checks=checks, headers=headers)


@schema.parametrize()
@hypothesis.settings(
    max_examples=max(2, FUZZ_EXAMPLES // 4),
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=not FULL,  # the same requests on every `make test`; new ones on every `make fuzz`
)
def test_api_fuzz_without_a_token(case: schemathesis.Case, fuzz_app: CountingApp) -> None:
    bogus = zlib.crc32(repr(case.path_parameters).encode()) % 2 == 0
    headers = {"Authorization": "Bearer ft_not-a-token"} if bogus else {}
    response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
    if case.path.startswith("/v1/"):
        # 401; or refused before authentication: a body over the limit (413), a NUL character (422 from the
        # guard), a path that matches no route (404/405, e.g. a job id holding a '/')
        status = response.status_code
        assert status in (401, 404, 405, 413, 422), response.text[:300]
        if status == 401:
            assert response.json()["error"]["param"] == "Authorization"
        if status == 422:
            assert response.json()["error"]["code"] == "invalid_parameter", response.text[:300]


def test_fuzzed_submissions_stayed_queued(
    fuzz_project: tuple[str, str, list[str]], settings: ServiceSettings, enqueued: list[str]
) -> None:
    """Whatever the fuzz got accepted was stored and left queued: only recorded, never sent to a queue."""
    project, _, finished = fuzz_project
    with session_scope(settings.database_url) as session:
        rows = session.execute(select(Job.id, Job.status).where(Job.project == project)).all()
    created = {job_id: status for job_id, status in rows if job_id not in finished}
    assert set(created.values()) <= {JobStatus.QUEUED.value}
    assert set(created) <= set(enqueued)
