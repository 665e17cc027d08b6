"""Helpers of the API tests: a client acting for a project, request bodies, rows inserted directly."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api.admin import create_token
from jobcore.db import session_scope
from jobcore.models import Job, JobEvent, JobKind, JobStatus, new_id, utcnow
from jobcore.settings import ServiceSettings


def new_project() -> str:
    return f"p-{secrets.token_hex(4)}"


def make_token(settings: ServiceSettings, project: str) -> str:
    with session_scope(settings.database_url) as session:
        return create_token(session, project, "test")[1]


class Caller:
    """A client acting for one project."""

    def __init__(self, client: TestClient, settings: ServiceSettings, project: str | None = None) -> None:
        self.client = client
        self.settings = settings
        self.project = project or new_project()
        self.headers = {"Authorization": f"Bearer {make_token(settings, self.project)}"}

    def post(self, url: str, body: Any = None, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        if body is not None and "content" not in kwargs:
            kwargs["json"] = body
        return self.client.post(url, headers=headers, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)


def sft_body(model: Path | str, data: Path | str) -> dict[str, Any]:
    return {
        "data_conf": {
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(data)}]},
            "validation_data": {"type": "NONE"},
        },
        "training_args": {"max_steps": 2, "learning_rate": 1e-3},
        "batchsize_conf": {"total_train_batch_size": 2, "max_per_device_train_batch_size": 2},
        "peft_conf": {"peft_type": "LORA", "peft_kwargs": {"r": 4}},
        "run_conf": {"model": str(model)},
        "sft_args": {"max_seq_length": 64},
    }


def insert_job(
    settings: ServiceSettings,
    project: str,
    *,
    kind: JobKind = JobKind.SFT,
    status: JobStatus = JobStatus.QUEUED,
    artifacts: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    config: dict[str, Any] | None = None,
) -> str:
    job_id = new_id()
    with session_scope(settings.database_url) as session:
        session.add(
            Job(
                id=job_id,
                project=project,
                kind=kind.value,
                status=status.value,
                queue="q",
                labels=labels or {},
                config=config or {},
                resolved={"config": config or {}},
                artifacts=artifacts or {},
                finished_at=utcnow() if JobStatus(status).terminal else None,
            )
        )
    return job_id


def set_job(settings: ServiceSettings, job_id: str, **values: Any) -> None:
    with session_scope(settings.database_url) as session:
        job = session.get(Job, job_id)
        assert job is not None
        for key, value in values.items():
            setattr(job, key, value)


def insert_events(settings: ServiceSettings, job_id: str, events: list[tuple[str, dict[str, Any]]]) -> list[int]:
    with session_scope(settings.database_url) as session:
        rows = [JobEvent(job_id=job_id, type=type_, data=data) for type_, data in events]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def assert_error(response: Any, status: int, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "param"}
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
    return dict(error)


def parse_sse(lines: Iterator[str], stop_after: int | None = None) -> list[dict[str, Any]]:
    """Reads SSE messages (comments included, as {"comment": ...}) until the stream ends or enough events came."""
    messages: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in lines:
        if line.startswith(":"):
            messages.append({"comment": line[1:].strip()})
        elif line == "":
            if current:
                messages.append(current)
                current = {}
                if stop_after is not None and sum(1 for m in messages if "id" in m) >= stop_after:
                    break
        else:
            key, _, value = line.partition(": ")
            current[key] = value
    return messages


def allowed_root(settings: ServiceSettings, index: int) -> Path:
    """An allowed root of the test settings, which are local folders."""
    root = settings.allowed_roots[index]
    assert isinstance(root, Path), root
    return root
