"""Reading and acting on jobs (GET /v1/jobs, GET /v1/jobs/{id}, its output, cancel).

The HTTP API against a real Postgres; no worker runs here: the enqueue hook is replaced by a recorder, and events
are inserted directly."""

from __future__ import annotations

from typing import Any

import yaml

from jobcore.db import session_scope
from jobcore.models import Job, JobKind, JobStatus, new_id
from jobcore.settings import ServiceSettings
from tests.service.api_helpers import (
    Caller,
    assert_error,
    insert_job,
    set_job,
)

# ---------------------------------------------------------------- reading


def test_list_filters_and_pagination(caller: Caller, settings: ServiceSettings) -> None:
    ids = []
    for i in range(5):
        kind = JobKind.SFT if i % 2 == 0 else JobKind.MERGE
        status = JobStatus.SUCCEEDED if i < 2 else JobStatus.QUEUED
        ids.append(insert_job(settings, caller.project, kind=kind, status=status, labels={"n": str(i), "team": "a"}))
    newest_first = list(reversed(ids))
    seen, after = [], None
    while True:
        page = caller.get("/v1/jobs", params={"limit": 2, **({"after": after} if after else {})}).json()
        assert len(page["data"]) <= 2
        seen += [j["id"] for j in page["data"]]
        after = page["next"]
        if after is None:
            break
    assert seen == newest_first
    assert [j["id"] for j in caller.get("/v1/jobs?kind=merge").json()["data"]] == [ids[3], ids[1]]
    assert [j["id"] for j in caller.get("/v1/jobs?status=succeeded").json()["data"]] == [ids[1], ids[0]]
    assert [j["id"] for j in caller.get("/v1/jobs?label=n=3&label=team=a").json()["data"]] == [ids[3]]
    assert caller.get("/v1/jobs?label=team=b").json()["data"] == []
    assert_error(caller.get(f"/v1/jobs?after={new_id()}"), 422, "invalid_cursor", "after")
    assert_error(caller.get("/v1/jobs?status=nonsense"), 422, "invalid_parameter", "status")
    assert_error(caller.get("/v1/jobs?limit=0"), 422, "invalid_parameter", "limit")
    assert_error(caller.get("/v1/jobs?label=novalue"), 422, "invalid_label", "label")


def test_unknown_job_is_404(caller: Caller) -> None:
    assert_error(caller.get(f"/v1/jobs/{new_id()}"), 404, "not_found")
    assert_error(caller.get("/v1/jobs/not-a-uuid"), 404, "not_found")


def test_generate_output(caller: Caller, settings: ServiceSettings) -> None:
    answers = [{"prompt": "Hi", "answer": "Hello"}]
    job_id = insert_job(settings, caller.project, kind=JobKind.GENERATE, status=JobStatus.RUNNING)
    assert_error(caller.get(f"/v1/jobs/{job_id}/output"), 409, "job_not_succeeded")
    output = settings.job_folder(job_id) / "output.yaml"
    output.parent.mkdir(parents=True)
    output.write_text(yaml.safe_dump(answers))
    set_job(settings, job_id, status="succeeded", artifacts={"output": str(output)})
    assert caller.get(f"/v1/jobs/{job_id}/output").json() == answers
    r = caller.get(f"/v1/jobs/{job_id}/output", headers={"Accept": "application/yaml"})
    assert r.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(r.text) == answers
    sft = insert_job(settings, caller.project, status=JobStatus.SUCCEEDED)
    assert_error(caller.get(f"/v1/jobs/{sft}/output"), 404, "no_output")


# ---------------------------------------------------------------- cancel


def test_cancel(caller: Caller, settings: ServiceSettings, body: dict[str, Any]) -> None:
    queued = caller.post("/v1/jobs/sft", body).json()
    r = caller.post(f"/v1/jobs/{queued['id']}/cancel")
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"
    assert r.json()["finished_at"]
    assert caller.post(f"/v1/jobs/{queued['id']}/cancel").json()["status"] == "cancelled"  # idempotent
    events = caller.get(f"/v1/jobs/{queued['id']}/events").json()["data"]
    assert events[-1]["type"] == "job"
    assert events[-1]["data"]["status"] == "cancelled"

    running = insert_job(settings, caller.project, status=JobStatus.RUNNING)
    assert caller.post(f"/v1/jobs/{running}/cancel").json()["status"] == "cancel_requested"
    assert caller.post(f"/v1/jobs/{running}/cancel").json()["status"] == "cancel_requested"
    with session_scope(settings.database_url) as session:
        job = session.get(Job, running)
        assert job is not None
        assert job.cancel_requested
        assert job.finished_at is None

    for status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        finished = insert_job(settings, caller.project, status=status)
        assert_error(caller.post(f"/v1/jobs/{finished}/cancel"), 409, "job_finished")
