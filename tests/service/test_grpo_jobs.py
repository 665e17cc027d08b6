"""GRPO through the service: a bad grader is a 422 naming it; a job runs on a real worker to the end with each
grader's reward in its metrics and sampled completions in its events; cancel stops it; a cancel with checkpoint is
resumed to the end on one reward curve."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobcore.settings import ServiceSettings
from tests.service.api_helpers import Caller, assert_error

TERMINAL = {"succeeded", "failed", "cancelled"}


def grpo_body(model: Path, data: Path, **training_args: Any) -> dict[str, Any]:
    return {
        "data_conf": {
            "chat_template_name": "chat-ml",
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(data)}]},
            "validation_data": {"type": "NONE"},
        },
        "training_args": {
            "max_steps": 12,
            "learning_rate": 2e-2,
            "logging_steps": 1,
            "save_strategy": "no",
            "gradient_checkpointing": False,
            "use_cpu": True,
            "report_to": [],
            "seed": 7,
            **training_args,
        },
        "batchsize_conf": {"total_train_batch_size": 8, "max_per_device_train_batch_size": 8},
        "peft_conf": {"peft_type": "LORA", "peft_kwargs": {"r": 4, "lora_alpha": 8, "target_modules": "all-linear"}},
        "run_conf": {"model": str(model)},
        "grpo_args": {"num_generations": 4, "max_completion_length": 4, "samples_per_log": 2},
        "graders": [
            {
                "name": "says_yes",
                "type": "string_check",
                "operation": "contains",
                "reference": "{{item.answer}}",
                "case_sensitive": False,
            },
            {"name": "short", "type": "length", "unit": "words", "max_length": 20, "weight": 0.5},
        ],
    }


@pytest.fixture(scope="module")
def prompts(data_dir: Path) -> Path:
    path = data_dir / "grpo-prompts.jsonl"
    questions = ["Is the sky blue?", "Does it rain?", "Is water wet?", "Are there cats?"]
    path.write_text(
        "".join(json.dumps({"messages": [{"role": "user", "content": q}], "answer": "yes"}) + "\n" for q in questions)
    )
    return path


# ---------------------------------------------------------------- submission (no worker)


def test_submit_grpo_is_a_training_job(caller: Caller, tiny_model_dir: Path, prompts: Path) -> None:
    answer = caller.post("/v1/jobs/grpo?processes=1", grpo_body(tiny_model_dir, prompts))
    assert answer.status_code == 201, answer.text
    job = answer.json()
    assert job["kind"] == "grpo"
    resolved = job["resolved"]["config"]
    assert resolved["graders"][0]["reference"] == "{{item.answer}}"
    assert resolved["training_args"]["output_dir"].endswith("/output")


@pytest.mark.parametrize(
    ("grader", "words"),
    [
        ({"type": "string_check", "operation": "regex", "reference": "(a+"}, "invalid regular expression"),
        ({"type": "json_schema", "schema": {"type": 3}}, "not a valid JSON Schema"),
        ({"type": "text_similarity", "metric": "meteor", "reference": "x"}, "metric"),
    ],
)
def test_a_bad_grader_is_a_422_naming_it(
    caller: Caller, tiny_model_dir: Path, prompts: Path, grader: dict[str, Any], words: str
) -> None:
    body = grpo_body(tiny_model_dir, prompts)
    body["graders"].append({"name": "broken", **grader})
    error = assert_error(caller.post("/v1/jobs/grpo", body), 422)
    assert error["param"].startswith("graders[2]"), error
    assert words in error["message"]
    if grader["type"] != "text_similarity":  # a value not in the schema's enum is named by its path
        assert "grader 'broken'" in error["message"]


def test_the_batch_must_hold_whole_groups(caller: Caller, tiny_model_dir: Path, prompts: Path) -> None:
    body = grpo_body(tiny_model_dir, prompts)
    body["grpo_args"]["num_generations"] = 3
    error = assert_error(caller.post("/v1/jobs/grpo", body), 422, param="batchsize_conf.total_train_batch_size")
    assert "multiple of 3" in error["message"]


# ---------------------------------------------------------------- a real worker


@pytest.fixture
def client(base_url: str, settings: ServiceSettings) -> Iterator[httpx.Client]:
    from api.admin import create_token
    from jobcore.db import session_scope

    with session_scope(settings.database_url) as session:
        _, token = create_token(session, "grpo", "GRPO service tests")
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        yield http


def wait_for(client: httpx.Client, job_id: str, statuses: set[str], seconds: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, f"job {job_id} stuck in {job['status']}"
        time.sleep(0.3)


def wait_for_step(client: httpx.Client, job_id: str, step: int, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while (client.get(f"/v1/jobs/{job_id}").json()["progress"].get("step") or 0) < step:
        assert time.monotonic() < deadline, "not training"
        time.sleep(0.1)


@pytest.mark.slow
def test_grpo_job_runs_with_rewards_in_metrics_and_samples_in_events(
    client: httpx.Client, tiny_model_dir: Path, prompts: Path
) -> None:
    created = client.post("/v1/jobs/grpo", json=grpo_body(tiny_model_dir, prompts), params={"name": "grpo"})
    assert created.status_code == 201, created.text
    job = wait_for(client, created.json()["id"], TERMINAL)
    assert job["status"] == "succeeded", job["error"]
    assert job["metrics"]["global_step"] == 12
    assert job["artifacts"]["final_checkpoint"].endswith("checkpoint-final")
    train = client.get(f"/v1/jobs/{job['id']}/metrics").json()["train"]
    for name in ("reward", "rewards/says_yes/mean", "rewards/says_yes/std", "rewards/short/mean"):
        assert [point["step"] for point in train[name]] == list(range(1, 13)), name
    assert all(point["value"] == 1.0 for point in train["rewards/short/mean"])
    assert "completions/mean_length" in train
    events = client.get(f"/v1/jobs/{job['id']}/events", params={"limit": 1000, "type": "samples"}).json()["data"]
    assert len(events) == 12
    sample = events[-1]["data"]["samples"][0]
    assert set(sample["rewards"]) == {"says_yes", "short"}
    assert sample["reward"] == pytest.approx(sample["rewards"]["says_yes"] + 0.5 * sample["rewards"]["short"])


@pytest.mark.slow
def test_cancel_stops_a_grpo_job(client: httpx.Client, tiny_model_dir: Path, prompts: Path) -> None:
    body = grpo_body(tiny_model_dir, prompts, max_steps=100_000, logging_steps=50)
    job_id = client.post("/v1/jobs/grpo", json=body).json()["id"]
    wait_for(client, job_id, {"running"}, seconds=120)
    deadline = time.monotonic() + 120
    while client.get(f"/v1/jobs/{job_id}").json()["phase"] != "training":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    asked = time.monotonic()
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    final = wait_for(client, job_id, TERMINAL, seconds=30)
    assert final["status"] == "cancelled"
    assert time.monotonic() - asked < 10


@pytest.mark.slow
def test_cancel_with_checkpoint_then_resume(client: httpx.Client, tiny_model_dir: Path, prompts: Path) -> None:
    steps = 40
    job_id = client.post("/v1/jobs/grpo", json=grpo_body(tiny_model_dir, prompts, max_steps=steps)).json()["id"]
    wait_for_step(client, job_id, 3)
    assert client.post(f"/v1/jobs/{job_id}/cancel", params={"checkpoint": "true"}).status_code == 200
    job = wait_for(client, job_id, TERMINAL, 60)
    assert job["status"] == "cancelled", job["error"]
    checkpoint = Path(job["artifacts"]["checkpoint"])
    assert (checkpoint / "adapter_model.safetensors").is_file()
    stopped_at = int(checkpoint.name.removeprefix("checkpoint-"))
    assert stopped_at < steps, "the run ended before the cancel reached it: give it more steps"

    resumed = client.post(f"/v1/jobs/{job_id}/resume")
    assert resumed.status_code == 200, resumed.text
    job = wait_for(client, job_id, TERMINAL, 180)
    assert job["status"] == "succeeded", job["error"]
    assert job["metrics"]["global_step"] == steps
    curve = [p["step"] for p in client.get(f"/v1/jobs/{job_id}/metrics").json()["train"]["reward"]]
    assert curve == list(range(1, steps + 1))  # one curve: the resumed run continued at the checkpoint's step
    assert [a["outcome"] for a in job["attempts"]] == ["cancelled", "succeeded"]
