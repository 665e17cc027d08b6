"""The engine with its model, data and output in a bucket (a real S3 API over HTTP: moto's server, reached through
the AWS environment variables only), as a user runs ``finetuning sft`` with ``s3://`` paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from sft_helpers import losses, run_cli, sft_config

from finetuning.contract import UPLOAD_MARKER
from finetuning.tiny import tiny_chat_records, write_jsonl
from tests.s3server import S3Server, upload_folder

pytestmark = pytest.mark.slow


def keys(bucket: str, prefix: str) -> list[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"][len(prefix) :] for page in pages for item in page.get("Contents", []))


@pytest.fixture
def bucket_inputs(s3_bucket: str, tiny_model_dir: Path, tmp_path: Path) -> tuple[str, str]:
    upload_folder(tiny_model_dir, s3_bucket, "models/tiny")
    data = write_jsonl(tiny_chat_records(16), tmp_path / "chat.jsonl")
    boto3.client("s3").upload_file(str(data), s3_bucket, "data/chat.jsonl")
    return f"s3://{s3_bucket}/models/tiny", f"s3://{s3_bucket}/data/chat.jsonl"


def test_sft_reads_a_bucket_and_publishes_every_checkpoint_then_resumes_from_the_bucket(
    s3_server: S3Server, s3_bucket: str, bucket_inputs: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, data = bucket_inputs
    out = f"s3://{s3_bucket}/runs/one"
    monkeypatch.setenv("FINETUNING_STORAGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FINETUNING_STAGING_DIR", str(tmp_path / "staging"))
    config = sft_config(
        model,
        data,
        out,
        training_args={"max_steps": 4, "save_strategy": "steps", "save_steps": 2, "save_total_limit": 1},
    )
    code, events = run_cli(tmp_path / "first", config)
    assert code == 0, events[-1]
    status = events[-1]
    assert status["status"] == "succeeded"
    assert status["artifacts"]["final_checkpoint"] == f"{out}/checkpoint-final"
    stored = keys(s3_bucket, "runs/one/")
    assert "checkpoint-final/adapter_model.safetensors" in stored
    assert f"checkpoint-4/{UPLOAD_MARKER}" in stored
    # save_total_limit: 1 holds in the bucket as on disk: checkpoint-2 was pruned once checkpoint-4 was up
    assert not [key for key in stored if key.startswith("checkpoint-2/")]
    marker = json.loads(
        boto3.client("s3").get_object(Bucket=s3_bucket, Key=f"runs/one/checkpoint-4/{UPLOAD_MARKER}")["Body"].read()
    )
    assert "adapter_model.safetensors" in marker["files"]
    uploads = [e for e in events if e["type"] == "storage" and e["action"] == "upload" and e["state"] == "uploaded"]
    assert {e["uri"] for e in uploads} >= {f"{out}/checkpoint-2", f"{out}/checkpoint-4", f"{out}/checkpoint-final"}
    downloads = [e for e in events if e["type"] == "storage" and e["action"] == "download"]
    assert {e["state"] for e in downloads if e.get("bytes") is not None} == {"downloaded"}
    assert losses(events)

    # a second machine: empty cache and staging, same bucket; it resumes at step 4 from the bucket and trains on
    monkeypatch.setenv("FINETUNING_STORAGE_CACHE_DIR", str(tmp_path / "cache2"))
    monkeypatch.setenv("FINETUNING_STAGING_DIR", str(tmp_path / "staging2"))
    config["training_args"]["max_steps"] = 6
    config["run_conf"]["resume_from_checkpoint"] = "auto"
    code, events = run_cli(tmp_path / "second", config)
    assert code == 0, events[-1]
    started = next(e for e in events if e["type"] == "run_started")
    assert started["config"]["resolved"]["resume_from_checkpoint"] == f"{out}/checkpoint-4"
    assert started["config"]["resolved"]["output_dir"] == out
    steps = [e["step"] for e in events if e["type"] == "metrics"]
    assert steps
    assert min(steps) > 4
    assert f"checkpoint-6/{UPLOAD_MARKER}" in keys(s3_bucket, "runs/one/")


def test_a_second_run_on_the_same_inputs_downloads_nothing(
    s3_server: S3Server, s3_bucket: str, bucket_inputs: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, data = bucket_inputs
    monkeypatch.setenv("FINETUNING_STORAGE_CACHE_DIR", str(tmp_path / "cache"))
    config = sft_config(model, data, tmp_path / "out", training_args={"max_steps": 1})
    for run in ("a", "b"):
        code, events = run_cli(tmp_path / run, config)
        assert code == 0, events[-1]
    states = {e["uri"]: e["state"] for e in events if e["type"] == "storage" and e.get("bytes") is not None}
    assert states == {model: "cached", data: "cached"}


def test_a_missing_bucket_object_is_one_message_and_exit_2(
    s3_server: S3Server,
    s3_bucket: str,
    tiny_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FINETUNING_STORAGE_CACHE_DIR", str(tmp_path / "cache"))
    missing = f"s3://{s3_bucket}/data/missing.jsonl"
    code, events = run_cli(tmp_path, sft_config(tiny_model_dir, missing, tmp_path / "out"))
    assert code == 2
    error = events[-1]["error"]
    assert error["code"] == "storage_object_not_found"
    assert missing in error["message"]
    err = capsys.readouterr().err
    assert f"error: {missing}: no such object" in err
    assert "Traceback" not in err
    assert "test-secret-key" not in err


def test_a_plan_reads_bucket_data_and_only_the_small_files_of_a_bucket_model(
    s3_server: S3Server,
    s3_bucket: str,
    bucket_inputs: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``finetuning plan`` on bucket inputs: the data file fetched whole (problem rows name its URI and line), the
    model folder's configs and tokenizer fetched but never its weights; a missing object is the run's own error."""
    import yaml

    from finetuning.cli import main

    model, _ = bucket_inputs
    lines = [json.dumps(record) for record in tiny_chat_records(10)]
    lines[3] = "{not json"
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    boto3.client("s3").upload_file(str(tmp_path / "bad.jsonl"), s3_bucket, "data/bad.jsonl")
    data = f"s3://{s3_bucket}/data/bad.jsonl"
    cache = tmp_path / "cache"
    monkeypatch.setenv("FINETUNING_STORAGE_CACHE_DIR", str(cache))
    monkeypatch.setenv("FINETUNING_STAGING_DIR", str(tmp_path / "staging"))
    config_path = tmp_path / "plan.yaml"
    config_path.write_text(yaml.safe_dump(sft_config(model, data, tmp_path / "out")))

    def plan(path: Path) -> tuple[int, dict[str, Any]]:
        capsys.readouterr()
        code = main(["--num-preprocess-workers", "1", "plan", "sft", str(path), "--json", "--cache-dir", str(cache)])
        return code, json.loads(capsys.readouterr().out)

    code, report = plan(config_path)
    assert code == 0, report
    assert report["data"]["files"][0]["path"] == data
    [problem] = report["problems"]["rows"]
    assert (problem["file"], problem["line"], problem["kind"]) == (data, 4, "not_json")
    assert report["statistics"]["train"]["rows"] == 9
    fetched = [p.name for p in cache.rglob("*") if p.is_file()]
    assert "config.json" in fetched
    assert "tokenizer_config.json" in fetched
    assert not [name for name in fetched if name.endswith(".safetensors")], fetched

    missing = tmp_path / "missing.yaml"
    missing.write_text(yaml.safe_dump(sft_config(model, f"s3://{s3_bucket}/data/nope.jsonl", tmp_path / "out")))
    code, answer = plan(missing)
    assert code == 2
    assert answer["error"]["code"] == "storage_object_not_found"
