"""The reproducibility manifest (docs/manifest.md): one ``manifest`` event per run, with the config made concrete,
the SHA-256 of every input, the versions and the machine."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from sft_helpers import run_cli, sft_config

from finetuning.events import read_events
from finetuning.hashing import HashCache, folder_digest
from finetuning.tiny import tiny_chat_records, write_jsonl
from finetuning.tools import generate as gen
from tests.s3server import S3Server, upload_folder

VERSIONED = ("python", "torch", "transformers", "trl", "peft", "accelerate", "bitsandbytes", "datasets")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def the_manifest(events: list[dict[str, Any]]) -> dict[str, Any]:
    manifests = [e for e in events if e["type"] == "manifest"]
    assert len(manifests) == 1, [e["type"] for e in events]
    return manifests[0]


def strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return [value] if isinstance(value, str) else []


def by_param(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {record["param"]: record for record in manifest["inputs"]}


# -- hashing, without a run --------------------------------------------------------------------------------------


def test_a_file_is_hashed_once_until_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text('{"a": 1}\n')
    cache = HashCache(tmp_path / "hashes")
    assert cache.sha256(data) == sha256(data)
    reads: list[Path] = []
    import finetuning.hashing as hashing

    real = hashing.file_sha256

    def counting(path: Path) -> str:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(hashing, "file_sha256", counting)
    assert cache.sha256(data) == sha256(data)
    assert reads == []  # served from the cache
    data.write_text('{"a": 2}\n')
    assert cache.sha256(data) == sha256(data)
    assert reads == [data]


def test_a_folder_hash_covers_names_and_contents_but_not_hidden_files(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "sub" / "weights.safetensors").write_bytes(b"\0" * 10)
    cache = HashCache(None)
    first = folder_digest(folder, cache)
    assert set(first["files"]) == {"config.json", "sub/weights.safetensors"}
    assert first["bytes"] == 12
    (folder / ".marker").write_text("x")
    (folder / ".cache").mkdir()
    (folder / ".cache" / "lock").write_text("x")
    assert folder_digest(folder, cache)["sha256"] == first["sha256"]
    (folder / "sub" / "weights.safetensors").rename(folder / "weights.safetensors")
    assert folder_digest(folder, cache)["sha256"] != first["sha256"]  # a file's name is part of the content


# -- runs ------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sft_manifest_hashes_inputs_pins_the_config_and_names_versions(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    data = write_jsonl(tiny_chat_records(16), tmp_path / "chat.jsonl")
    config = sft_config(
        model,
        data,
        tmp_path / "out",
        training_args={"max_steps": 1, "data_seed": 11},
        run_conf={"resume_from_checkpoint": "auto", "model_args": {"dtype": "auto"}},
        data_conf={"validation_data": {"type": "AUTO_SPLIT", "ratio": 0.25}},
    )
    code, events = run_cli(tmp_path / "a", config)
    assert code == 0, events[-1]
    manifest = the_manifest(events)
    # after the data and the model were resolved, before training
    types = [e["type"] for e in events]
    assert types.index("manifest") < types.index("metrics")
    assert manifest["method"] == "sft"

    inputs = by_param(manifest)
    record = inputs["data_conf.training_data.datasets[0].path"]
    assert record["kind"] == "file"
    assert record["sha256"] == sha256(data)
    assert record["bytes"] == data.stat().st_size
    model_record = inputs["run_conf.model"]
    assert model_record["kind"] == "folder"
    assert model_record["files"]["model.safetensors"]["sha256"] == sha256(model / "model.safetensors")
    assert set(model_record["files"]) >= {"config.json", "tokenizer.json", "model.safetensors"}

    # every auto made concrete; seeds, the engine's own choices and the trainer's arguments recorded
    run_config = manifest["config"]
    assert "auto" not in strings(run_config)
    assert run_config["run_conf"]["resume_from_checkpoint"] is False
    assert run_config["run_conf"]["model_args"]["dtype"] == "float32"
    assert run_config["training_args"]["seed"] == 7
    assert run_config["training_args"]["use_liger_kernel"] is False
    assert run_config["data_conf"]["validation_data"]["seed"] == 1289525893  # the schema's default, pinned
    assert manifest["seeds"] == {
        "training_args.seed": 7,
        "training_args.data_seed": 11,
        "data_conf.validation_data.seed": 1289525893,
    }
    assert manifest["resolved"]["per_device_train_batch_size"] == 8
    assert manifest["resolved"]["resume_from_checkpoint"] is False
    assert manifest["training_arguments"]["seed"] == 7
    assert manifest["training_arguments"]["per_device_train_batch_size"] == 8

    versions = manifest["versions"]
    assert all(versions[name] for name in VERSIONED), versions
    assert versions["silogen-finetuning"]
    machine = manifest["machine"]
    assert machine["world_size"] == 1
    assert machine["hostname"]
    assert {"cuda", "hip", "gpu_count", "gpus", "image_digest"} <= set(machine)
    assert manifest["determinism"]["deterministic_algorithms"] is False

    # the config as the manifest has it runs again, to the same manifest (but for the time and the output folder)
    rerun = dict(run_config, training_args={**run_config["training_args"], "output_dir": str(tmp_path / "out2")})
    code, events = run_cli(tmp_path / "b", rerun)
    assert code == 0, events[-1]
    again = the_manifest(events)
    assert again["inputs"] == manifest["inputs"]  # the model's content hash is stable
    for one in (again, manifest):
        one["config"]["training_args"].pop("output_dir")
    assert again["config"] == manifest["config"]

    # a changed file in the model folder changes its hash (and only that file's entry)
    (model / "generation_config.json").write_text((model / "generation_config.json").read_text() + "\n")
    code, events = run_cli(tmp_path / "c", rerun)
    assert code == 0, events[-1]
    changed = by_param(the_manifest(events))["run_conf.model"]
    assert changed["sha256"] != model_record["sha256"]
    differing = {name for name, entry in changed["files"].items() if model_record["files"][name] != entry}
    assert differing == {"generation_config.json"}


@pytest.mark.slow
def test_generate_has_a_manifest_with_its_seed_and_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = {
        "model_conf": {"model": str(tiny_model_dir)},
        "prompt_conf": {"type": "open-input", "input": "What color is the sky?"},
        "hf_gen_params": {"do_sample": True, "max_new_tokens": 4},
        "seed": 5,
    }
    (tmp_path / "gen.yaml").write_text(yaml.safe_dump(config))
    events_path = tmp_path / "events.jsonl"
    code = gen.main(["--events-file", str(events_path), str(tmp_path / "gen.yaml"), str(tmp_path / "out.yaml")])
    events = read_events(events_path)
    assert code == 0, events[-1]
    manifest = the_manifest(events)
    assert manifest["method"] == "generate"
    assert manifest["seeds"] == {"seed": 5}
    assert manifest["config"]["seed"] == 5
    model_record = by_param(manifest)["model_conf.model"]
    assert model_record["files"]["model.safetensors"]["sha256"] == sha256(tiny_model_dir / "model.safetensors")
    assert manifest["resolved"]["prompts"] == 1
    assert manifest["resolved"]["generation_config"]["max_new_tokens"] == 4


@pytest.mark.slow
def test_bucket_inputs_are_named_by_uri_and_hashed_as_read(
    s3_server: S3Server, s3_bucket: str, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_folder(tiny_model_dir, s3_bucket, "models/tiny")
    data = write_jsonl(tiny_chat_records(16), tmp_path / "chat.jsonl")
    boto3.client("s3").upload_file(str(data), s3_bucket, "data/chat.jsonl")
    model_uri, data_uri = f"s3://{s3_bucket}/models/tiny", f"s3://{s3_bucket}/data/chat.jsonl"
    monkeypatch.setenv("FINETUNING_STORAGE_CACHE_DIR", str(tmp_path / "cache"))
    code, events = run_cli(tmp_path, sft_config(model_uri, data_uri, tmp_path / "out", training_args={"max_steps": 1}))
    assert code == 0, events[-1]
    manifest = the_manifest(events)
    inputs = by_param(manifest)
    record = inputs["data_conf.training_data.datasets[0].path"]
    assert record["value"] == record["uri"] == data_uri
    assert record["sha256"] == sha256(data)
    assert record["path"] != data_uri  # the local copy it read
    assert inputs["run_conf.model"]["uri"] == model_uri
    assert inputs["run_conf.model"]["files"]["model.safetensors"]["sha256"] == sha256(
        tiny_model_dir / "model.safetensors"
    )
    # the config names the bucket objects, as the user wrote it, not the machine's cache
    assert manifest["config"]["data_conf"]["training_data"]["datasets"][0]["path"] == data_uri
    assert manifest["config"]["run_conf"]["model"] == model_uri


@pytest.mark.slow
def test_dpo_manifest_config_runs_again_as_the_same_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    from finetuning.tiny import tiny_preference_records

    data = write_jsonl(tiny_preference_records(8), tmp_path / "pairs.jsonl")
    config = {
        "data_conf": {
            "chat_template_name": "keep-original",
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(data)}]},
            "validation_data": {"type": "NONE"},
        },
        # activation checkpointing, bf16 and the loader processes are left to the engine
        "training_args": {"output_dir": str(tmp_path / "out"), "max_steps": 1, "use_cpu": True, "report_to": []},
        "batchsize_conf": {"total_train_batch_size": 4, "max_per_device_train_batch_size": 4},
        "peft_conf": {"peft_type": "LORA", "peft_kwargs": {"r": 4, "target_modules": "all-linear"}},
        "run_conf": {"model": str(tiny_model_dir)},
    }
    code, events = run_cli(tmp_path / "a", config, command="dpo")
    assert code == 0, events[-1]
    manifest = the_manifest(events)
    assert manifest["method"] == "dpo"
    assert manifest["resolved"]["trainer"] == "dpo"
    args = manifest["config"]["training_args"]
    assert args["seed"] == 42
    assert args["activation_checkpointing"] == manifest["training_arguments"]["activation_checkpointing"]
    assert args["bf16"] is False

    code, events = run_cli(tmp_path / "b", manifest["config"], command="dpo")
    assert code == 0, events[-1]
    again = the_manifest(events)
    assert again["training_arguments"] == manifest["training_arguments"]
    assert again["config"] == manifest["config"]
