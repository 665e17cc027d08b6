"""End to end on the CPU with the tiny model: the `finetuning sft` command as users run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from sft_helpers import losses, run_cli, sft_config
from transformers import TrainerCallback

from finetuning.events import read_events
from finetuning.tiny import tiny_chat_records, write_jsonl

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_lora_chatml_completions_only_learns_and_saves_for_inference(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tiny_chat_records(32), tmp_path / "colors.jsonl")
    out = tmp_path / "out"
    code, events = run_cli(tmp_path, sft_config(tiny_model_dir, data, out))
    assert code == 0
    curve = losses(events)
    assert len(curve) == 30
    assert min(curve[-5:]) < curve[0] / 2, curve

    assert events[-1]["type"] == "status"
    assert events[-1]["status"] == "succeeded"
    phases = [e["phase"] for e in events if e["type"] == "phase"]
    assert phases[:4] == ["loading_tokenizer", "preprocessing", "loading_model", "training"]
    final = out / "checkpoint-final"
    assert (final / "adapter_model.safetensors").is_file()
    assert not list(final.glob("*model*.bin"))  # weights are safetensors only
    # chat-ml adds <|im_start|>/<|im_end|>: the grown base is saved beside the adapter
    new_base = out / "checkpoint-new-basemodel"
    assert (new_base / "model.safetensors").is_file()

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(final)
    assert tokenizer.eos_token == "<|im_end|>"
    im_start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert isinstance(im_start, int)
    assert im_start >= 1000
    adapter_config = json.loads((final / "adapter_config.json").read_text())
    assert {"embed_tokens", "lm_head"} <= set(adapter_config["modules_to_save"] or [])


def test_full_sft_with_weighted_mix_and_auto_split_evaluates(tiny_model_dir: Path, tmp_path: Path) -> None:
    a = write_jsonl(tiny_chat_records(24, seed=1), tmp_path / "a.jsonl")
    b = write_jsonl(tiny_chat_records(8, seed=2), tmp_path / "b.jsonl")
    out = tmp_path / "out"
    config = sft_config(
        tiny_model_dir,
        a,
        out,
        data_conf={
            "chat_template_name": "keep-original",
            "training_data": {
                "type": "PRECOMPUTE_WEIGHTED_MIX",
                "datasets": [{"path": str(a), "sampling_weight": 3.0}, {"path": str(b), "sampling_weight": 1.0}],
            },
            "validation_data": {"type": "AUTO_SPLIT", "ratio": 0.25},
        },
        training_args={"max_steps": 12, "eval_strategy": "steps", "eval_steps": 6, "learning_rate": 1e-3},
        peft_conf={"peft_type": "NO_PEFT"},
        sft_args={"train_on_completions_only": False},
    )
    config["peft_conf"] = {"peft_type": "NO_PEFT"}
    code, events = run_cli(tmp_path, config)
    assert code == 0
    evals = [e for e in events if e["type"] == "eval"]
    assert [e["step"] for e in evals] == [6, 12]
    assert all(e["metrics"]["loss"] > 0 for e in evals)
    assert (out / "checkpoint-final" / "model.safetensors").is_file()
    assert not (out / "checkpoint-new-basemodel").exists()  # keep-original adds no tokens


class CrashAfterSave(TrainerCallback):
    """A Trainer callback that kills the run right after a given checkpoint is on disk."""

    def __init__(self, step: int) -> None:
        self.step = step

    def __getattr__(self, name: str) -> Any:
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            raise RuntimeError("simulated crash")


def test_interrupted_run_resumes_from_its_last_checkpoint(tiny_model_dir: Path, tmp_path: Path) -> None:
    from finetuning.config import SFTConfig
    from finetuning.events import EventWriter
    from finetuning.methods.sft import run_sft
    from finetuning.runtime import RunOptions
    from finetuning.settings import EngineSettings

    data = write_jsonl(tiny_chat_records(32), tmp_path / "colors.jsonl")
    out = tmp_path / "out"
    config = sft_config(
        tiny_model_dir,
        data,
        out,
        training_args={"max_steps": 10, "save_strategy": "steps", "save_steps": 4},
        run_conf={"model": str(tiny_model_dir), "resume_from_checkpoint": "auto"},
    )
    options = RunOptions(settings=EngineSettings(cache_dir=tmp_path / "cache"), num_preprocess_workers=1)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_sft(SFTConfig.validate_config(config), options, EventWriter(None), callbacks=[CrashAfterSave(8)])
    assert (out / "checkpoint-8").is_dir()
    assert not (out / "checkpoint-final").exists()

    code, events = run_cli(tmp_path, config)
    assert code == 0
    started_event = next(e for e in events if e["type"] == "run_started")
    assert started_event["config"]["resolved"]["resume_from_checkpoint"].endswith("checkpoint-8")
    steps = [e["step"] for e in events if e["type"] == "metrics" and e.get("loss") is not None]
    assert steps == [9, 10]
    assert events[-1]["metrics"]["global_step"] == 10
    assert (out / "checkpoint-final" / "adapter_model.safetensors").is_file()


def test_mlflow_tracking_records_params_and_loss_curve(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tiny_chat_records(16), tmp_path / "colors.jsonl")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = sft_config(tiny_model_dir, data, tmp_path / "out", training_args={"max_steps": 6, "logging_steps": 2})
    code, events = run_cli(tmp_path, config, "--mlflow-server-uri", uri, "--experiment-name", "e2e")
    assert code == 0

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("e2e")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert events[-1]["artifacts"]["mlflow_run_id"] == run.info.run_id
    assert "learning_rate" in run.data.params
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [2, 4, 6]


def test_bad_record_fails_with_file_and_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "broken.jsonl"
    good = json.dumps(tiny_chat_records(1)[0])
    data.write_text(f"{good}\n{good}\n" + json.dumps({"messages": [{"role": "robot", "content": "x"}]}) + "\n")
    code, events = run_cli(tmp_path, sft_config(tiny_model_dir, data, tmp_path / "out"))
    assert code == 2
    error = events[-1]["error"]
    assert events[-1]["status"] == "failed"
    assert "broken.jsonl" in error["message"]
    assert "line 3" in error["message"]
    assert error["code"] == "invalid_data"


def test_missing_model_fails_before_any_work(tmp_path: Path) -> None:
    data = write_jsonl(tiny_chat_records(4), tmp_path / "d.jsonl")
    code, events = run_cli(tmp_path, sft_config(tmp_path / "no-such-model", data, tmp_path / "out"))
    assert code == 2
    assert events[-1]["error"]["param"] == "run_conf.model"
    assert events[-1]["error"]["code"] == "model_not_found"
    assert not (tmp_path / "out").exists()  # nothing was started


def test_two_processes_halve_the_per_device_batch(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tiny_chat_records(32), tmp_path / "colors.jsonl")
    config = sft_config(tiny_model_dir, data, tmp_path / "out", training_args={"max_steps": 3})
    config["training_args"]["ddp_find_unused_parameters"] = False
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    events_path = tmp_path / "events.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # accelerate's --cpu launches a single process; --multi_gpu with use_cpu gives gloo data parallel on the CPU
    launched = subprocess.run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "-m",
            "finetuning.cli",
            "--num-preprocess-workers",
            "1",
            "--events-file",
            str(events_path),
            "sft",
            str(config_path),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    events = read_events(events_path)
    resolved = next(e for e in events if e["type"] == "run_started")["config"]["resolved"]
    assert resolved["num_processes"] == 2
    assert resolved["per_device_train_batch_size"] == 4
    assert resolved["gradient_accumulation_steps"] == 1
    assert resolved["total_train_batch_size"] == 8
    assert events[-1]["status"] == "succeeded"


def test_each_run_of_a_job_is_an_mlflow_run_tagged_with_the_job_and_its_attempt(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service runs a job again from its checkpoint: the second MLflow run says which job, which attempt and
    which checkpoint it resumed; every event says its attempt."""
    data = write_jsonl(tiny_chat_records(16), tmp_path / "colors.jsonl")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "out"
    monkeypatch.setenv("FINETUNING_JOB_ID", "job-1")
    for attempt, steps in ((1, 4), (2, 6)):
        monkeypatch.setenv("FINETUNING_JOB_ATTEMPT", str(attempt))
        config = sft_config(
            tiny_model_dir,
            data,
            out,
            training_args={"max_steps": steps, "logging_steps": 2, "save_strategy": "steps", "save_steps": 2},
            run_conf={"resume_from_checkpoint": "auto"},
        )
        code, events = run_cli(
            tmp_path / f"run-{attempt}", config, "--mlflow-server-uri", uri, "--experiment-name", "e"
        )
        assert code == 0
        assert {event.get("attempt") for event in events} == {attempt}

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("e")
    assert experiment is not None
    runs = sorted(client.search_runs([experiment.experiment_id]), key=lambda run: run.data.tags["finetuning.attempt"])
    assert [run.data.tags["finetuning.attempt"] for run in runs] == ["1", "2"]
    assert {run.data.tags["finetuning.job_id"] for run in runs} == {"job-1"}
    assert "finetuning.resumed_from" not in runs[0].data.tags
    assert runs[1].data.tags["finetuning.resumed_from"].endswith("checkpoint-4")
    assert [m.step for m in client.get_metric_history(runs[1].info.run_id, "loss")] == [6]
