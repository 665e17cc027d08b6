"""Tokens and projects: 401 without a valid token, the token cache, every job visible only to its project, auth
disabled.

The HTTP API against a real Postgres; no worker runs here: the enqueue hook is replaced by a recorder, and events
are inserted directly."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.admin import create_token, revoke_token
from api.main import create_app
from jobcore.db import session_scope
from jobcore.models import JobKind, JobStatus
from jobcore.settings import ServiceSettings
from tests.service.api_helpers import (
    Caller,
    assert_error,
    insert_job,
    new_project,
)

# ---------------------------------------------------------------- auth and project scoping


def test_401_without_or_with_a_bad_or_revoked_token(app_client: TestClient, settings: ServiceSettings) -> None:
    project = new_project()
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic dXNlcjpwdw=="}):
        r = app_client.get("/v1/jobs", headers=headers)
        assert_error(r, 401, "unauthorized", "Authorization")
        assert r.headers["WWW-Authenticate"] == "Bearer"
    with session_scope(settings.database_url) as session:
        row, token = create_token(session, project)
    headers = {"Authorization": f"Bearer {token}"}
    assert app_client.get("/v1/jobs", headers=headers).status_code == 200
    with session_scope(settings.database_url) as session:
        revoke_token(session, row.prefix)
    error = assert_error(app_client.get("/v1/jobs", headers=headers), 401, "unauthorized")
    assert "revoked" in error["message"]


def test_a_process_remembers_a_token_for_token_cache_seconds(settings: ServiceSettings) -> None:
    """The token query is spared for token_cache_seconds; a revocation reaches a running process within that."""
    with session_scope(settings.database_url) as session:
        row, token = create_token(session, new_project())
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings.model_copy(update={"token_cache_seconds": 1.0}))) as client:
        assert client.get("/v1/jobs", headers=headers).status_code == 200
        with session_scope(settings.database_url) as session:
            revoke_token(session, row.prefix)
        assert client.get("/v1/jobs", headers=headers).status_code == 200  # remembered
        time.sleep(1.1)
        assert_error(client.get("/v1/jobs", headers=headers), 401, "unauthorized")


def test_another_projects_job_is_404_everywhere(caller: Caller, other: Caller, settings: ServiceSettings) -> None:
    job_id = insert_job(settings, caller.project, kind=JobKind.GENERATE, status=JobStatus.SUCCEEDED)
    assert caller.get(f"/v1/jobs/{job_id}").status_code == 200
    for path in ("", "/events", "/events/stream", "/logs", "/logs?follow=true", "/metrics", "/output"):
        assert_error(other.get(f"/v1/jobs/{job_id}{path}"), 404, "not_found")
    r = other.get(f"/v1/jobs/{job_id}/events", headers={"Accept": "text/event-stream"})
    assert_error(r, 404, "not_found")
    assert_error(other.post(f"/v1/jobs/{job_id}/cancel"), 404, "not_found")
    assert other.get("/v1/jobs").json()["data"] == []


def test_auth_disabled_serves_project_default(
    settings: ServiceSettings, caplog: pytest.LogCaptureFixture, enqueued: list[Any]
) -> None:
    insert_job(settings, "default", labels={"marker": "auth-off"})
    app = create_app(settings.model_copy(update={"auth_disabled": True}))
    with caplog.at_level(logging.WARNING, logger="api"), TestClient(app) as client:
        jobs = client.get("/v1/jobs?label=marker=auth-off").json()["data"]
    assert len(jobs) == 1
    assert any("AUTHENTICATION IS DISABLED" in r.getMessage() for r in caplog.records)
