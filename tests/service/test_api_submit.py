"""Submitting jobs (POST /v1/jobs/{kind}): validation with the field path named, paths confined to the allowed roots,
hub ids, trust_remote_code, the broker hand-off, the body limit, chaining by job id, idempotency, and the original
engine's recipes.

The HTTP API against a real Postgres; no worker runs here: the enqueue hook is replaced by a recorder, and events
are inserted directly."""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from fastapi.testclient import TestClient

from api import services
from api.main import create_app
from finetuning.config import SFTConfig
from jobcore.db import session_scope
from jobcore.models import JobKind, JobStatus, new_id
from jobcore.settings import ServiceSettings
from tests.service.api_helpers import (
    Caller,
    assert_error,
    insert_job,
    new_project,
    set_job,
)

# ---------------------------------------------------------------- submission


def test_submit_sft_answers_201_with_the_job(
    caller: Caller, body: dict[str, Any], settings: ServiceSettings, enqueued: list[Any]
) -> None:
    body["training_args"]["output_dir"] = "/somewhere/else"
    r = caller.post("/v1/jobs/sft?name=first&label=team=nlp&label=run=1&processes=2", body)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["kind"] == "sft"
    assert job["status"] == "queued"
    assert job["name"] == "first"
    assert job["labels"] == {"team": "nlp", "run": "1"}
    assert job["queue"] == settings.default_queue
    assert job["progress"] == {"step": None, "total_steps": None, "percent": None, "elapsed_s": None, "eta_s": None}
    assert job["error"] is None
    assert job["attempt"] == 0
    assert job["created_at"]
    # as submitted, and what runs: outputs forced under the job's folder, the user's value recorded
    assert job["config"]["training_args"]["output_dir"] == "/somewhere/else"
    resolved = job["resolved"]
    assert resolved["config"]["training_args"]["output_dir"] == str(settings.job_folder(job["id"]) / "output")
    assert resolved["overridden"] == {"training_args.output_dir": "/somewhere/else"}
    assert resolved["num_processes"] == 2
    assert resolved["config"]["run_conf"]["model"] == body["run_conf"]["model"]
    # what the engine gets is what was set (paths resolved): defaults stay the engine's, and it validates
    assert "model_args" not in resolved["config"]["run_conf"]
    SFTConfig.validate_config(resolved["config"])
    # enqueued once, after the commit
    assert enqueued == [(job["id"], settings.default_queue, True)]
    assert caller.get(f"/v1/jobs/{job['id']}").json() == job
    events = caller.get(f"/v1/jobs/{job['id']}/events").json()["data"]
    assert [(e["type"], e["data"]) for e in events] == [("job", {"status": "queued", "attempt": 0})]


def test_submit_yaml_body(caller: Caller, body: dict[str, Any]) -> None:
    text = yaml.safe_dump(body)
    r = caller.post("/v1/jobs/sft?queue=gpu-a100", content=text, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 201, r.text
    assert r.json()["queue"] == "gpu-a100"
    assert r.json()["config"]["run_conf"] == body["run_conf"]


def test_unknown_key_is_named_with_a_suggestion(caller: Caller, body: dict[str, Any]) -> None:
    body["training_args"]["learnin_rate"] = 1e-4
    error = assert_error(caller.post("/v1/jobs/sft", body), 422, "invalid_config", "training_args.learnin_rate")
    assert "did you mean 'learning_rate'" in error["message"]


def test_every_config_issue_is_listed(caller: Caller, body: dict[str, Any]) -> None:
    body["training_args"]["learnin_rate"] = 1e-4
    body["batchsize_conf"]["total_train_batch_size"] = "many"
    error = assert_error(caller.post("/v1/jobs/sft", body), 422, "invalid_config")
    params = {d["param"] for d in error["details"]}
    assert params == {"training_args.learnin_rate", "batchsize_conf.total_train_batch_size"}


def test_wrong_type_names_the_field(caller: Caller, body: dict[str, Any]) -> None:
    body["batchsize_conf"]["total_train_batch_size"] = "many"
    assert_error(caller.post("/v1/jobs/sft", body), 422, "invalid_config", "batchsize_conf.total_train_batch_size")


DATA_PARAM = "data_conf.training_data.datasets[0].path"


def test_missing_data_file(caller: Caller, body: dict[str, Any], data_dir: Path) -> None:
    body["data_conf"]["training_data"]["datasets"][0]["path"] = str(data_dir / "nope.jsonl")
    error = assert_error(caller.post("/v1/jobs/sft", body), 422, "path_not_found", DATA_PARAM)
    assert "nope.jsonl" in error["message"]


def test_missing_model_folder(caller: Caller, body: dict[str, Any], tiny_model_dir: Path) -> None:
    body["run_conf"]["model"] = str(tiny_model_dir.parent / "no-such-model")
    assert_error(caller.post("/v1/jobs/sft", body), 422, "path_not_found", "run_conf.model")


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_paths_outside_the_allowed_roots(
    caller: Caller, body: dict[str, Any], data_dir: Path, tmp_path: Path, how: str
) -> None:
    outside = tmp_path / "secret.jsonl"
    outside.write_text("{}\n")
    if how == "absolute":
        path = str(outside)
    elif how == "dotdot":
        path = str(data_dir) + "/" + "/".join([".."] * len(data_dir.parts)) + str(outside)
    else:
        link = data_dir / f"link-{secrets.token_hex(3)}.jsonl"
        link.symlink_to(outside)
        path = str(link)
    assert Path(os.path.realpath(path)) == outside.resolve()
    body["data_conf"]["training_data"]["datasets"][0]["path"] = path
    error = assert_error(caller.post("/v1/jobs/sft", body), 422, "path_not_allowed", DATA_PARAM)
    assert "outside the allowed roots" in error["message"]


def test_hub_ids_refused_unless_allowed(
    caller: Caller, body: dict[str, Any], settings: ServiceSettings, enqueued: list[Any]
) -> None:
    body["run_conf"]["model"] = "some-org/some-model"
    error = assert_error(caller.post("/v1/jobs/sft", body), 422, "hub_models_disabled", "run_conf.model")
    assert "allow_hub_models" in error["message"]
    hub_app = create_app(settings.model_copy(update={"allow_hub_models": True}))
    with TestClient(hub_app) as client:
        r = client.post("/v1/jobs/sft", json=body, headers=caller.headers)
    assert r.status_code == 201, r.text
    assert r.json()["resolved"]["config"]["run_conf"]["model"] == "some-org/some-model"


def test_trust_remote_code_refused(caller: Caller, body: dict[str, Any]) -> None:
    body["run_conf"]["model_args"] = {"trust_remote_code": True}
    assert_error(
        caller.post("/v1/jobs/sft", body), 422, "trust_remote_code_disabled", "run_conf.model_args.trust_remote_code"
    )


def test_submission_reaches_the_broker(app_client: TestClient, settings: ServiceSettings, body: dict[str, Any]) -> None:
    """The real hook (worker.dispatch): the Celery message on the job's queue carries the job id only."""
    import redis

    queue = f"api-test-{secrets.token_hex(3)}"  # a queue no test worker consumes
    r = Caller(app_client, settings).post(f"/v1/jobs/sft?queue={queue}", body)
    assert r.status_code == 201, r.text
    client = redis.Redis.from_url(settings.broker_url)
    try:
        messages = [json.loads(m) for m in cast(list[bytes], client.lrange(queue, 0, -1))]
    finally:
        client.delete(queue, f"_kombu.binding.{queue}")
        client.close()
    assert len(messages) == 1
    assert messages[0]["headers"]["task"] == "jobs.run"
    assert r.json()["id"] in messages[0]["headers"]["argsrepr"]


def test_enqueue_failure_leaves_the_job_queued(
    caller: Caller, body: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(services, "enqueue_job", broken)
    r = caller.post("/v1/jobs/sft", body)
    assert r.status_code == 201, r.text
    assert caller.get(f"/v1/jobs/{r.json()['id']}").json()["status"] == "queued"


def test_body_size_limit(caller: Caller, settings: ServiceSettings) -> None:
    too_big = b"{" + b" " * settings.max_body_bytes + b"}"
    assert_error(caller.post("/v1/jobs/sft", content=too_big), 413, "body_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        yield too_big

    r = caller.post("/v1/jobs/sft", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_error(r, 413, "body_too_large")


# ---------------------------------------------------------------- chaining


def test_chaining_by_job_id(caller: Caller, body: dict[str, Any], settings: ServiceSettings) -> None:
    trained = caller.post("/v1/jobs/sft", body).json()
    merge = {"base_model": body["run_conf"]["model"], "adapter": f"job:{trained['id']}"}
    error = assert_error(caller.post("/v1/jobs/merge", merge), 409, "job_not_succeeded", "adapter")
    assert "queued" in error["message"]
    adapter = settings.job_folder(trained["id"]) / "output" / "checkpoint-final"
    adapter.mkdir(parents=True)
    set_job(settings, trained["id"], status="succeeded", artifacts={"final_checkpoint": str(adapter)})

    r = caller.post("/v1/jobs/merge", merge)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["inputs"] == {"adapter": {"job_id": trained["id"], "artifact": "final_checkpoint", "path": str(adapter)}}
    assert job["resolved"]["config"]["adapter"] == str(adapter)
    assert job["resolved"]["config"]["device_map"] == "auto"  # merge fields become arguments: defaults included
    assert job["config"]["adapter"] == f"job:{trained['id']}"

    # adapter conversion from the training job also gets the config it was trained with
    r = caller.post("/v1/jobs/adapter-conversion", {"adapter": f"job:{trained['id']}/final_checkpoint"})
    assert r.status_code == 201, r.text
    assert r.json()["resolved"]["training_config"] == trained["resolved"]["config"]

    # a generate job on the merged model, by job id
    merged = settings.job_folder(job["id"]) / "merged"
    merged.mkdir(parents=True)
    set_job(settings, job["id"], status="succeeded", artifacts={"model_path": str(merged)})
    gen = {"model_conf": {"model": f"job:{job['id']}"}, "prompt_conf": {"type": "open-input", "input": "Hi"}}
    r = caller.post("/v1/jobs/generate", gen)
    assert r.status_code == 201, r.text
    assert r.json()["inputs"]["model_conf.model"]["path"] == str(merged)


def test_chaining_errors(caller: Caller, other: Caller, body: dict[str, Any], settings: ServiceSettings) -> None:
    base = body["run_conf"]["model"]
    missing = {"base_model": base, "adapter": f"job:{new_id()}"}
    assert_error(caller.post("/v1/jobs/merge", missing), 422, "job_not_found", "adapter")
    # another project's job is not found either
    theirs = insert_job(settings, other.project, status=JobStatus.SUCCEEDED, artifacts={"final_checkpoint": base})
    assert_error(caller.post("/v1/jobs/merge", {**missing, "adapter": f"job:{theirs}"}), 422, "job_not_found")
    mine = insert_job(settings, caller.project, status=JobStatus.SUCCEEDED, artifacts={"final_checkpoint": base})
    bad_artifact = {"base_model": base, "adapter": f"job:{mine}/nothing"}
    assert_error(caller.post("/v1/jobs/merge", bad_artifact), 422, "artifact_not_found", "adapter")
    assert_error(caller.post("/v1/jobs/merge", {**missing, "adapter": "job:42"}), 422, "invalid_job_reference")


# ---------------------------------------------------------------- idempotency


def test_idempotency_key_returns_the_first_job(caller: Caller, other: Caller, body: dict[str, Any]) -> None:
    headers = {"Idempotency-Key": "abc-123"}
    first = caller.post("/v1/jobs/sft", body, headers=headers)
    again = caller.post("/v1/jobs/sft", body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert len(caller.get("/v1/jobs").json()["data"]) == 1
    # keys are per project
    assert other.post("/v1/jobs/sft", body, headers=headers).status_code == 201
    # the same key for another kind of job is a mistake, not a retry
    merge = {"base_model": body["run_conf"]["model"], "adapter": body["run_conf"]["model"]}
    assert_error(caller.post("/v1/jobs/merge", merge, headers=headers), 409, "idempotency_key_reused")


def test_idempotency_race_on_the_unique_index(settings: ServiceSettings, body: dict[str, Any]) -> None:
    """Two requests with one key, interleaved: the second waits on the first's insert, then answers its job."""
    project, raw = new_project(), json.dumps(body).encode()
    meta = services.SubmitMeta(queue="q", idempotency_key="race")
    results: dict[str, tuple[str, bool]] = {}
    with session_scope(settings.database_url) as first:
        job, created = services.submit_job(first, settings, project, JobKind.SFT, raw, None, meta)
        results["first"] = (job.id, created)

        def second() -> None:
            with session_scope(settings.database_url) as session:
                other_job, other_created = services.submit_job(session, settings, project, JobKind.SFT, raw, None, meta)
                results["second"] = (other_job.id, other_created)

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)  # the second insert is now blocked on the unique index
    thread.join(10)
    assert results["first"] == (job.id, True)
    assert results["second"] == (job.id, False)


# ---------------------------------------------------------------- configs of the original engine

ORIGINAL_LORA = Path(__file__).parents[1] / "assets" / "original-configs" / "aw-tutorial-01-finetune-lora.yaml"


def test_an_original_recipe_is_accepted_and_its_upgrades_are_recorded(
    caller: Caller, tiny_model_dir: Path, data_file: Path
) -> None:
    text = ORIGINAL_LORA.read_text()
    text = text.replace("/local_resources/basemodel", str(tiny_model_dir))
    text = text.replace(
        "/local_resources/default-bucket_datasets_argilla-mistral-large-human-prompts.jsonl", str(data_file)
    )
    r = caller.post("/v1/jobs/sft", content=text, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["config"]["training_args"]["warmup_steps"] == 0.01
    assert "warmup_ratio" not in job["config"]["training_args"]
    assert job["config"]["run_conf"]["model_args"]["dtype"] == "bfloat16"
    upgrades = {u["param"]: u for u in job["resolved"]["upgrades"]}
    assert set(upgrades) == {"training_args.warmup_ratio", "run_conf.model_args.torch_dtype"}
    assert upgrades["training_args.warmup_ratio"]["replacement"] == "training_args.warmup_steps: 0.01"
    assert "transformers 5" in upgrades["training_args.warmup_ratio"]["reason"]
    SFTConfig.validate_config(job["resolved"]["config"])  # what the worker runs is in today's spelling


def test_an_original_field_that_cannot_be_kept_is_a_422_naming_it(caller: Caller, body: dict[str, Any]) -> None:
    body["training_args"]["save_safetensors"] = False
    error = assert_error(caller.post("/v1/jobs/sft", body), 422, "invalid_config", "training_args.save_safetensors")
    assert "safetensors" in error["message"]


def test_a_config_that_could_not_start_is_refused_at_submission(caller: Caller, body: dict[str, Any]) -> None:
    body["training_args"].update(eval_strategy="steps", eval_steps=5)  # validation_data is NONE
    error = assert_error(caller.post("/v1/jobs/sft", body), 422, "invalid_config", "training_args.eval_strategy")
    assert "validation" in error["message"]
