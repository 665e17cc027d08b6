"""Dry runs (POST /v1/jobs/{sft,dpo,grpo}?dry_run=true): the submission's checks, then the pre-flight plan as a 200;
nothing stored, nothing queued (docs/plan.md). The real API against Postgres; the plan runs `finetuning plan` in a
child process on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from finetuning.tiny import tiny_chat_records, tiny_preference_records, write_jsonl
from jobcore.db import session_scope
from jobcore.models import Job
from jobcore.settings import ServiceSettings
from tests.service.api_helpers import Caller, assert_error, sft_body


def _jobs(settings: ServiceSettings, project: str) -> int:
    with session_scope(settings.database_url) as session:
        return int(session.scalar(select(func.count()).select_from(Job).where(Job.project == project)) or 0)


def test_dry_run_answers_200_with_the_plan_and_stores_nothing(
    caller: Caller, settings: ServiceSettings, data_dir: Path, tiny_model_dir: Path, enqueued: list[Any]
) -> None:
    lines = [json.dumps(record) for record in tiny_chat_records(12)]
    lines[2] = "{not json"
    lines[4] = json.dumps({"messages": [{"role": "wizard", "content": "hi"}]})
    path = data_dir / "plan-api.jsonl"
    path.write_text("\n".join(lines) + "\n")
    body = sft_body(tiny_model_dir, path)
    body["data_conf"]["chat_template_name"] = "chat-ml"
    before = _jobs(settings, caller.project)

    r = caller.post("/v1/jobs/sft?dry_run=true&gpu=H100-80GB", body)

    assert r.status_code == 200, r.text
    report = r.json()
    assert report["kind"] == "sft"
    rows = {(p["line"], p["kind"]) for p in report["problems"]["rows"]}
    assert {(3, "not_json"), (5, "bad_role")} <= rows
    assert all(p["file"] == str(path) for p in report["problems"]["rows"])
    assert report["statistics"]["train"]["rows"] == 10
    assert report["resolved"]["total_train_batch_size"] == 2
    assert report["steps"]["total"] == 2  # max_steps
    assert [g["gpu"] for g in report["memory"]["gpus"]] == ["H100-80GB"]
    assert report["time"]["gpus"][0]["basis"] == "assumed"
    assert any("max_bad_rows=0" in verdict for verdict in report["verdicts"])  # the run would fail on them
    # a report, not a job: nothing stored, nothing queued
    assert _jobs(settings, caller.project) == before
    assert enqueued == []


def test_dry_run_of_dpo(caller: Caller, data_dir: Path, tiny_model_dir: Path) -> None:
    records = tiny_preference_records(10)
    del records[1]["rejected_messages"]
    path = write_jsonl(records, data_dir / "plan-api-dpo.jsonl")
    body = sft_body(tiny_model_dir, path)
    del body["sft_args"]
    body["data_conf"]["training_data"]["data_type"] = "DirectPreference"
    body["data_conf"]["chat_template_name"] = "keep-original"
    body["data_conf"]["max_bad_rows"] = 1
    r = caller.post("/v1/jobs/dpo?dry_run=true", body)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["problems"]["rows"][0]["line"] == 2
    assert report["problems"]["rows"][0]["kind"] == "missing_rejected"
    assert report["statistics"]["train"]["rows"] == 9


def test_dry_run_on_a_missing_file_is_the_submission_422(
    caller: Caller, settings: ServiceSettings, tiny_model_dir: Path, data_dir: Path
) -> None:
    body = sft_body(tiny_model_dir, data_dir / "nowhere.jsonl")
    submitted = caller.post("/v1/jobs/sft", body)
    planned = caller.post("/v1/jobs/sft?dry_run=true", body)
    error = assert_error(planned, 422, param="data_conf.training_data.datasets[0].path")
    assert error == assert_error(submitted, 422)


def test_dry_run_on_a_missing_model_is_the_submission_422(caller: Caller, data_file: Path, data_dir: Path) -> None:
    body = sft_body(data_dir / "no-model", data_file)
    submitted = assert_error(caller.post("/v1/jobs/sft", body), 422, param="run_conf.model")
    assert assert_error(caller.post("/v1/jobs/sft?dry_run=true", body), 422) == submitted


def test_dry_run_of_grpo(caller: Caller, data_dir: Path, tiny_model_dir: Path) -> None:
    """Prompts checked as the run checks them (a row the grader cannot read is named), sampling's cost estimated."""
    from tests.service.test_grpo_jobs import grpo_body

    rows = [{"messages": [{"role": "user", "content": f"Question {i}?"}], "answer": "yes"} for i in range(9)]
    del rows[3]["answer"]
    path = write_jsonl(rows, data_dir / "plan-api-grpo.jsonl")
    body = grpo_body(tiny_model_dir, path)
    r = caller.post("/v1/jobs/grpo?dry_run=true&gpu=H100-80GB", body)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["kind"] == "grpo"
    [problem] = report["problems"]["rows"]
    assert (problem["line"], problem["kind"]) == (4, "grader_cannot_read")
    assert report["statistics"]["train"]["rows"] == 8
    assert report["steps"]["total"] == 12  # training_args.max_steps
    assert report["generation"]["generated_tokens_at_most"] == 12 * 8 * 4
    assert [gpu["gpu"] for gpu in report["time"]["gpus"]] == ["H100-80GB"]
    assert any("bad row" in verdict and "max_bad_rows=0" in verdict for verdict in report["verdicts"])
