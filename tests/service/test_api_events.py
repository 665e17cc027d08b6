"""A job's events (paged and SSE, with Last-Event-ID), its logs (and follow) and its metrics series.

The HTTP API against a real Postgres; no worker runs here: the enqueue hook is replaced by a recorder, and events
are inserted directly."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from jobcore.db import session_scope
from jobcore.models import JobEvent, JobStatus, utcnow
from jobcore.settings import ServiceSettings
from tests.service.api_helpers import (
    Caller,
    assert_error,
    insert_events,
    insert_job,
    parse_sse,
    set_job,
)


def test_events_paging(caller: Caller, settings: ServiceSettings) -> None:
    job_id = insert_job(settings, caller.project, status=JobStatus.SUCCEEDED)
    ids = insert_events(settings, job_id, [("log", {"stream": "stdout", "line": f"line {i}"}) for i in range(7)])
    seen, after = [], 0
    while True:
        page = caller.get(f"/v1/jobs/{job_id}/events", params={"after": after, "limit": 3}).json()
        seen += [e["id"] for e in page["data"]]
        if page["next"] is None:
            break
        after = page["next"]
    assert seen == ids
    first = caller.get(f"/v1/jobs/{job_id}/events?limit=1").json()["data"][0]
    assert set(first) == {"id", "type", "data", "attempt", "created_at"}
    assert first["data"] == {"stream": "stdout", "line": "line 0"}


def test_sse_resumes_with_last_event_id(caller: Caller, settings: ServiceSettings) -> None:
    job_id = insert_job(settings, caller.project, status=JobStatus.RUNNING)
    ids = insert_events(settings, job_id, [("progress", {"step": i, "total_steps": 10}) for i in range(6)])
    url = f"/v1/jobs/{job_id}/events/stream"
    with caller.client.stream("GET", url, headers=caller.headers) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        first = [m for m in parse_sse(r.iter_lines(), stop_after=3) if "id" in m]
    assert [int(m["id"]) for m in first] == ids[:3]
    assert first[0]["event"] == "progress"
    assert json.loads(first[0]["data"]) == {"step": 0, "total_steps": 10}

    # the job goes on while the client is away, then finishes
    ids += insert_events(settings, job_id, [("metrics", {"step": 7, "loss": 1.0}), ("status", {"status": "ok"})])
    set_job(settings, job_id, status="succeeded", finished_at=utcnow())
    headers = {**caller.headers, "Last-Event-ID": first[-1]["id"]}
    with caller.client.stream("GET", url, params={"after": 0}, headers=headers) as r:
        rest = parse_sse(r.iter_lines())  # ends by itself: the job is terminal
    got = [int(m["id"]) for m in rest if "id" in m]
    assert [int(m["id"]) for m in first] + got == ids  # every event exactly once, in order


def test_sse_live_with_heartbeats_and_accept_header(caller: Caller, settings: ServiceSettings) -> None:
    job_id = insert_job(settings, caller.project, status=JobStatus.RUNNING)

    def worker() -> None:
        time.sleep(0.5)  # long enough for heartbeats (every 0.2 s in this app)
        insert_events(settings, job_id, [("phase", {"phase": "training"})])
        time.sleep(0.1)
        insert_events(settings, job_id, [("job", {"status": "succeeded", "attempt": 1})])
        set_job(settings, job_id, status="succeeded", finished_at=utcnow())

    thread = threading.Thread(target=worker)
    thread.start()
    headers = {**caller.headers, "Accept": "text/event-stream"}
    with caller.client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as r:
        messages = parse_sse(r.iter_lines())
    thread.join()
    assert {"comment": "keep-alive"} in messages
    assert [m["event"] for m in messages if "event" in m] == ["phase", "job"]


def test_sse_bad_last_event_id(caller: Caller, settings: ServiceSettings) -> None:
    job_id = insert_job(settings, caller.project, status=JobStatus.SUCCEEDED)
    r = caller.get(f"/v1/jobs/{job_id}/events/stream", headers={"Last-Event-ID": "abc"})
    assert_error(r, 422, "invalid_parameter", "Last-Event-ID")


def test_logs_and_follow(caller: Caller, settings: ServiceSettings) -> None:
    job_id = insert_job(settings, caller.project, status=JobStatus.RUNNING)
    insert_events(
        settings,
        job_id,
        [
            ("log", {"stream": "stdout", "line": "loading"}),
            ("metrics", {"step": 1, "loss": 2.0}),
            ("log", {"level": "warning", "message": "few samples"}),
        ],
    )
    r = caller.get(f"/v1/jobs/{job_id}/logs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text == "loading\n[warning] few samples\n"

    def finish() -> None:
        time.sleep(0.2)
        insert_events(settings, job_id, [("log", {"stream": "stderr", "line": "done"})])
        set_job(settings, job_id, status="failed", finished_at=utcnow())

    thread = threading.Thread(target=finish)
    thread.start()
    followed = caller.get(f"/v1/jobs/{job_id}/logs?follow=true").text  # returns once the job is terminal
    thread.join()
    assert followed == "loading\n[warning] few samples\ndone\n"


def test_metrics_series(caller: Caller, settings: ServiceSettings) -> None:
    job_id = insert_job(settings, caller.project, status=JobStatus.SUCCEEDED)
    metrics = {"total_steps": 2, "learning_rate": 1e-3, "grad_norm": 1.5, "tokens_per_second": 400.0}
    insert_events(
        settings,
        job_id,
        [
            (
                "metrics",
                {**metrics, "step": 1, "epoch": 0.5, "loss": 4.5, "extra": {"entropy": 2.0, "train_runtime": 0.1}},
            ),
            ("progress", {"step": 1, "total_steps": 2, "percent": 50.0}),
            ("metrics", {**metrics, "step": 2, "epoch": 1.0, "loss": "NaN", "extra": {}}),
            ("eval", {"step": 2, "epoch": 1.0, "metrics": {"loss": 4.6, "runtime": 0.1}}),
            (
                "metrics",
                {
                    "step": 2,
                    "loss": None,
                    "learning_rate": None,
                    "grad_norm": None,
                    "tokens_per_second": None,
                    "extra": {"train_runtime": 0.2, "train_loss": 4.4},
                },
            ),
        ],
    )
    data = caller.get(f"/v1/jobs/{job_id}/metrics").json()

    def points(series: list[dict[str, Any]]) -> list[tuple[int, Any]]:
        return [(p["step"], p["value"]) for p in series]

    assert points(data["train"]["loss"]) == [(1, 4.5), (2, "NaN")]
    assert points(data["train"]["learning_rate"]) == [(1, 1e-3), (2, 1e-3)]
    assert points(data["train"]["entropy"]) == [(1, 2.0)]
    assert points(data["train"]["epoch"]) == [(1, 0.5), (2, 1.0)]
    assert {name: points(series) for name, series in data["eval"].items()} == {
        "loss": [(2, 4.6)],
        "runtime": [(2, 0.1)],
    }
    assert data["summary"] == {"train_runtime": 0.2, "train_loss": 4.4}
    assert data["superseded"] is None


def test_a_resumed_jobs_metrics_hold_each_step_once(caller: Caller, settings: ServiceSettings) -> None:
    """Attempt 1 logged steps 1-5 and was lost; attempt 2 resumed checkpoint-3 and logged 4-6 (and an eval at 4):
    the series is steps 1-6 once, 4 and 5 from attempt 2; attempt 1's 4 and 5 are superseded, and reachable."""
    job_id = insert_job(settings, caller.project, status=JobStatus.SUCCEEDED)
    rows: list[tuple[str, dict[str, Any], int]] = [("metrics", {"step": s, "loss": 10.0 - s}, 1) for s in range(1, 6)]
    rows.append(("eval", {"step": 4, "metrics": {"loss": 9.0}}, 1))
    rows.append(("resumed", {"attempt": 2, "checkpoint": "/x/checkpoint-3", "from_step": 3, "rerun": None}, 2))
    rows += [("metrics", {"step": s, "loss": 20.0 - s}, 2) for s in range(4, 7)]
    rows.append(("eval", {"step": 4, "metrics": {"loss": 8.0}}, 2))
    with session_scope(settings.database_url) as session:
        for kind, data, attempt in rows:
            session.add(JobEvent(job_id=job_id, type=kind, data=data, attempt=attempt))
            session.flush()
    series = caller.get(f"/v1/jobs/{job_id}/metrics").json()
    loss = [(p["step"], p["value"], p["attempt"]) for p in series["train"]["loss"]]
    assert loss == [(1, 9.0, 1), (2, 8.0, 1), (3, 7.0, 1), (4, 16.0, 2), (5, 15.0, 2), (6, 14.0, 2)]
    assert [(p["value"], p["attempt"]) for p in series["eval"]["loss"]] == [(8.0, 2)]
    assert series["superseded"] is None
    full = caller.get(f"/v1/jobs/{job_id}/metrics?include_superseded=true").json()
    lost = [(p["step"], p["value"], p["attempt"]) for p in full["superseded"]["train"]["loss"]]
    assert lost == [(4, 6.0, 1), (5, 5.0, 1)]
    assert [(p["value"], p["attempt"]) for p in full["superseded"]["eval"]["loss"]] == [(9.0, 1)]
    assert full["train"] == series["train"]
    # the events stay a log: every one is there, each with its attempt
    events = caller.get(f"/v1/jobs/{job_id}/events?limit=1000").json()["data"]
    assert [(e["type"], e["attempt"]) for e in events].count(("metrics", 1)) == 5
