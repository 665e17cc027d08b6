"""EventsCallback and MLflow tracking, driven by a real transformers.Trainer on a tiny random Llama."""

import math
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments

from finetuning.events import EventsCallback, EventWriter, read_events
from finetuning.settings import EngineSettings
from finetuning.tracking import TRACKING_ENV_VARS, TrackingCli, apply_report_to, configure_tracking

pytestmark = pytest.mark.slow

VOCAB = 100
SEQ_LEN = 16


def random_dataset(rows: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Random token rows; the last quarter of each row is padding, which "non_padding" token counting skips."""
    generator = torch.Generator().manual_seed(seed)
    rows_out = []
    for _ in range(rows):
        ids = torch.randint(3, VOCAB, (SEQ_LEN,), generator=generator)
        mask = torch.ones(SEQ_LEN, dtype=torch.long)
        mask[-SEQ_LEN // 4 :] = 0
        labels = ids.masked_fill(mask == 0, -100)
        rows_out.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    return rows_out


def tiny_trainer(output_dir: Path, callbacks: list[TrainerCallback], **overrides: Any) -> Trainer:
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        vocab_size=VOCAB,
    )
    settings: dict[str, Any] = {
        "output_dir": str(output_dir),
        "use_cpu": True,
        "bf16": False,
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 4,
        "learning_rate": 1e-2,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "include_num_input_tokens_seen": "non_padding",
        "disable_tqdm": True,
        "seed": 0,
    }
    args = TrainingArguments(**(settings | overrides))
    return Trainer(
        model=LlamaForCausalLM(config),
        args=args,
        train_dataset=random_dataset(8, seed=1),
        eval_dataset=random_dataset(4, seed=2),
        callbacks=callbacks,
    )


def test_trainer_hooks_become_events(tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    with EventWriter(events_file) as writer:
        trainer = tiny_trainer(
            tmp_path / "out",
            [EventsCallback(writer)],
            max_steps=6,
            save_strategy="steps",
            save_steps=2,
            eval_strategy="steps",
            eval_steps=3,
        )
        trainer.train()

    events = read_events(events_file)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "phase"
    assert events[0]["phase"] == "training"
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_type.setdefault(event["type"], []).append(event)

    step_metrics = [e for e in by_type["metrics"] if e["loss"] is not None]
    assert [e["step"] for e in step_metrics] == [1, 2, 3, 4, 5, 6]
    losses = [e["loss"] for e in step_metrics]
    assert all(isinstance(loss, float) and math.isfinite(loss) for loss in losses)
    assert losses[-1] < losses[0]
    for event in step_metrics:
        assert event["total_steps"] == 6
        assert event["learning_rate"] > 0
        assert event["grad_norm"] > 0
        assert 0 < event["epoch"] <= 2
        assert event["tokens_per_second"] > 0  # counted by the Trainer with include_num_input_tokens_seen
        assert "num_input_tokens_seen" in event["extra"]
    # The end-of-training summary is one more metrics event, with its values under extra.
    (summary,) = [e for e in by_type["metrics"] if e["loss"] is None]
    assert summary["step"] == 6
    assert {"train_runtime", "train_loss"} <= set(summary["extra"])
    assert trainer.state.num_input_tokens_seen == 6 * 2 * (SEQ_LEN - SEQ_LEN // 4)  # padding not counted

    progress = by_type["progress"]
    assert [e["step"] for e in progress] == [1, 2, 3, 4, 5, 6]  # one per step, the summary log adds none
    assert [e["percent"] for e in progress] == pytest.approx([100 * s / 6 for s in range(1, 7)], abs=0.01)
    assert progress[-1]["percent"] == 100
    assert progress[-1]["eta_s"] == 0
    assert all(e["eta_s"] is not None and e["eta_s"] >= 0 for e in progress)
    assert [e["elapsed_s"] for e in progress] == sorted(e["elapsed_s"] for e in progress)

    evals = by_type["eval"]
    assert [e["step"] for e in evals] == [3, 6]
    assert all(math.isfinite(e["metrics"]["loss"]) and "runtime" in e["metrics"] for e in evals)
    assert not any(key.startswith("eval_") for e in evals for key in e["metrics"])

    checkpoints = by_type["checkpoint"]
    assert [e["step"] for e in checkpoints] == [2, 4, 6]
    for event in checkpoints:
        path = Path(event["path"])
        assert path.is_absolute()
        assert path == (tmp_path / "out" / f"checkpoint-{event['step']}").absolute()
        assert (path / "trainer_state.json").is_file()

    assert "status" not in by_type  # the caller's to write


def test_callback_writes_nothing_when_the_writer_is_off(tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    writer = EventWriter(events_file, enabled=False)  # e.g. not the main process
    tiny_trainer(tmp_path / "out", [EventsCallback(writer)], max_steps=2).train()
    assert not events_file.exists()


@pytest.mark.parametrize("store", ["sqlite", "file"])
def test_mlflow_store_records_params_and_loss(store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    # configure_tracking writes the real environment (that is what MLflowCallback reads); monkeypatch undoes it.
    # mlflow.set_experiment also exports MLFLOW_EXPERIMENT_ID and keeps the id in a module global: undo those too,
    # or a later test with another store would look for this experiment there.
    for name in (*TRACKING_ENV_VARS, "MLFLOW_RUN_ID", "MLFLOW_NESTED_RUN", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("mlflow.tracking.fluent._active_experiment_id", None)
    # A file store works only because configure_tracking sets MLFLOW_ALLOW_FILE_STORE (MLflow 3 refuses it otherwise).
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}" if store == "sqlite" else (tmp_path / "mlruns").as_uri()
    decision = configure_tracking(
        TrackingCli(mlflow_server_uri=uri, experiment_name="events-test"),
        None,
        EngineSettings(mlflow_tracking_uri=None),
        os.environ,
    )
    report_to = apply_report_to([], decision.enabled)
    assert report_to == ["mlflow"]

    events_file = tmp_path / "events.jsonl"
    with EventWriter(events_file) as writer:
        tiny_trainer(tmp_path / "out", [EventsCallback(writer)], max_steps=4, report_to=report_to).train()

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("events-test")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == decision.run_name
    assert run.data.tags["mlflow.runName"] == decision.run_name
    assert run.data.params["learning_rate"] == "0.01"
    assert run.data.params["hidden_size"] == "32"  # the model config is logged too
    history = client.get_metric_history(run.info.run_id, "loss")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]
    # MLflow and the events file saw the same numbers.
    event_losses = {e["step"]: e["loss"] for e in read_events(events_file) if e["type"] == "metrics" and e["loss"]}
    assert {m.step: m.value for m in history} == pytest.approx(event_losses)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fake_state(step: int, tokens: int, max_steps: int = 4) -> Any:  # a TrainerState's fields the hooks read
    return SimpleNamespace(
        global_step=step, max_steps=max_steps, num_input_tokens_seen=tokens, is_world_process_zero=True
    )


def test_tokens_per_second_leaves_out_eval_and_save_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr("finetuning.events.time.monotonic", clock)
    args: Any = SimpleNamespace(output_dir=str(tmp_path))  # stand-ins for TrainingArguments and TrainerControl
    control: Any = SimpleNamespace()
    with EventWriter(tmp_path / "e.jsonl") as writer:
        callback = EventsCallback(writer)
        callback.on_train_begin(args, fake_state(0, 0), control)
        clock.now = 1.0  # step 1: 100 tokens in 1 s
        callback.on_step_end(args, fake_state(1, 100), control)
        callback.on_log(args, fake_state(1, 100), control, logs={"loss": 2.0})
        clock.now = 11.0  # a 10 s evaluation, then a 20 s checkpoint
        callback.on_evaluate(args, fake_state(1, 100), control)
        clock.now = 31.0
        callback.on_save(args, fake_state(1, 100), control)
        clock.now = 32.0  # step 2: 100 tokens in 1 s
        callback.on_step_end(args, fake_state(2, 200), control)
        callback.on_log(args, fake_state(2, 200), control, logs={"loss": 1.0})

    events = read_events(tmp_path / "e.jsonl")
    assert [e["tokens_per_second"] for e in events if e["type"] == "metrics"] == [100.0, 100.0]
    last_progress = [e for e in events if e["type"] == "progress"][-1]
    # The ETA does count evaluations and saves: the rest of the run will have them too.
    assert (last_progress["elapsed_s"], last_progress["eta_s"], last_progress["percent"]) == (32.0, 32.0, 50.0)


def test_eta_after_resuming_counts_only_this_sessions_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr("finetuning.events.time.monotonic", clock)
    args: Any = SimpleNamespace(output_dir=str(tmp_path))  # stand-ins for TrainingArguments and TrainerControl
    control: Any = SimpleNamespace()
    with EventWriter(tmp_path / "e.jsonl") as writer:
        callback = EventsCallback(writer)
        callback.on_train_begin(args, fake_state(10, 0, max_steps=20), control)  # resumed at step 10
        clock.now = 4.0
        callback.on_log(args, fake_state(12, 0, max_steps=20), control, logs={"loss": 1.0})

    (metrics, progress) = read_events(tmp_path / "e.jsonl")[1:]
    assert metrics["tokens_per_second"] is None  # the trainer does not count tokens here
    assert (progress["percent"], progress["eta_s"]) == (60.0, 16.0)  # 2 s a step, 8 steps left
