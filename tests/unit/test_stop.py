"""Stopping a training run on request (SIGUSR1): the handler, the final status event, the exit code; and the
out-of-memory remedy that names the settings to change."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from finetuning import stopping
from finetuning.contract import OOM_REMEDY, STOP_SIGNAL
from finetuning.events import EventWriter, read_events
from finetuning.tools.common import run_reporting_status


@pytest.fixture(autouse=True)
def fresh_stop_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(stopping, "STOP", stopping._StopState())
    previous = signal.getsignal(STOP_SIGNAL)
    yield
    signal.signal(STOP_SIGNAL, previous)


def test_a_stop_before_training_ends_the_run_cancelled_without_a_checkpoint(tmp_path: Path) -> None:
    def body() -> None:
        os.kill(os.getpid(), STOP_SIGNAL)  # still loading: the handler stops the run at once
        raise AssertionError("not reached")

    with EventWriter(tmp_path / "events.jsonl") as events, pytest.raises(stopping.TrainingStopped):
        run_reporting_status(events, body)
    status = read_events(tmp_path / "events.jsonl")[-1]
    assert (status["type"], status["status"], status["checkpoint"], status["error"]) == (
        "status",
        "cancelled",
        None,
        None,
    )
    assert signal.getsignal(STOP_SIGNAL) == signal.SIG_IGN  # a repeated signal can't kill the exit


def test_a_stop_during_training_is_left_to_the_next_step_and_named_in_the_status(tmp_path: Path) -> None:
    checkpoint = tmp_path / "out" / "checkpoint-7"
    checkpoint.mkdir(parents=True)

    def body() -> None:
        stopping.STOP.training = True
        os.kill(os.getpid(), STOP_SIGNAL)  # no exception here: the callback stops at a step end
        os.kill(os.getpid(), STOP_SIGNAL)  # repeats change nothing
        assert stopping.STOP.requested
        stopping.STOP.stopping_at = 7  # what the callback records
        stopped = stopping.stopped_checkpoint(tmp_path / "out")
        assert stopped is not None
        raise stopped

    with EventWriter(tmp_path / "events.jsonl") as events, pytest.raises(stopping.TrainingStopped):
        run_reporting_status(events, body)
    status = read_events(tmp_path / "events.jsonl")[-1]
    assert status["status"] == "cancelled"
    assert status["checkpoint"] == str(checkpoint.absolute())
    assert status["metrics"] == {"global_step": 7}


def test_the_stop_callback_saves_and_stops_at_the_step_end() -> None:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    callback = stopping.stop_callback()
    args, state, control = TrainingArguments(output_dir="unused", use_cpu=True), TrainerState(), TrainerControl()
    callback.on_train_begin(args, state, control)
    state.global_step = 3
    callback.on_step_end(args, state, control)
    assert not control.should_save
    assert not control.should_training_stop
    stopping.STOP.requested = True
    state.global_step = 4
    callback.on_step_end(args, state, control)
    assert control.should_save
    assert control.should_training_stop
    callback.on_train_end(args, state, control)
    assert stopping.STOP.stopping_at == 4


def test_the_out_of_memory_remedy_names_the_settings_to_change() -> None:
    for setting in (
        "batchsize_conf.max_per_device_train_batch_size",
        "training_args.gradient_checkpointing",
        "quant_conf",
        "load_in_4bit",
        "sft_args.max_seq_length",
    ):
        assert setting in OOM_REMEDY
