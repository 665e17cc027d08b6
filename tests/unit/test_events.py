"""The JSON-lines event format: envelope, seq, one object per line, the typed helpers and the reader."""

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from finetuning.contract import EVENTS_VERSION, RunStatus
from finetuning.events import EventWriter, Phase, read_events


def test_envelope_seq_and_one_object_per_line(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "events.jsonl"  # parent folders are created
    with EventWriter(path) as writer:
        writer.run_started("sft", config={"method": "sft"})
        writer.phase(Phase.LOADING_MODEL)
        writer.phase("training")
        writer.log("warning", "3 rows were longer than max_length and were truncated")

    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
    events = [json.loads(line) for line in lines]
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert all(e["v"] == EVENTS_VERSION == 1 for e in events)
    assert [e["type"] for e in events] == ["run_started", "phase", "phase", "log"]
    assert events[0]["method"] == "sft"
    assert events[0]["config"] == {"method": "sft"}
    assert [e["phase"] for e in events[1:3]] == ["loading_model", "training"]
    assert events[3] | {"seq": 0, "time": ""} == {
        "v": 1,
        "seq": 0,
        "time": "",
        "type": "log",
        "level": "warning",
        "message": "3 rows were longer than max_length and were truncated",
    }
    for event in events:
        assert event["time"].endswith("Z")
        stamp = datetime.fromisoformat(event["time"])
        assert stamp.tzinfo is not None
        assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60
    assert read_events(path) == events


def test_each_event_is_on_disk_at_once(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    writer.phase("preprocessing")
    assert read_events(path)[0]["phase"] == "preprocessing"  # flushed, not buffered until close
    writer.close()


def test_metrics_fields_are_always_present(tmp_path: Path) -> None:
    with EventWriter(tmp_path / "e.jsonl") as writer:
        event = writer.metrics(step=3, total_steps=10, loss=1.5, extra={"entropy": 0.25})

    assert event is not None
    expected = {
        "step": 3,
        "total_steps": 10,
        "epoch": None,
        "loss": 1.5,
        "learning_rate": None,
        "grad_norm": None,
        "tokens_per_second": None,
        "extra": {"entropy": 0.25},
    }
    assert {key: event[key] for key in expected} == expected
    assert read_events(tmp_path / "e.jsonl") == [event]


def test_progress_eval_checkpoint_and_status(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    with EventWriter(path) as writer:
        writer.progress(step=5, total_steps=20, elapsed_s=10.0, eta_s=30.0)
        writer.progress(step=1, total_steps=None, elapsed_s=1.0, eta_s=None)
        writer.eval(step=5, epoch=0.5, metrics={"loss": 2.0, "runtime": 0.1})
        writer.checkpoint(step=5, path=tmp_path / "checkpoint-5")
        writer.status(RunStatus.SUCCEEDED, metrics={"train_loss": 1.2}, artifacts={"model_path": tmp_path / "final"})
        writer.status("failed", error={"code": "data_not_found", "message": "no such file", "param": "data_conf.path"})

    progress, unknown_total, evaluation, checkpoint, succeeded, failed = read_events(path)
    assert (progress["percent"], progress["elapsed_s"], progress["eta_s"]) == (25.0, 10.0, 30.0)
    assert (unknown_total["percent"], unknown_total["eta_s"]) == (None, None)
    assert evaluation["metrics"] == {"loss": 2.0, "runtime": 0.1}
    assert evaluation["epoch"] == 0.5
    assert checkpoint["path"] == str(tmp_path / "checkpoint-5")
    assert succeeded["status"] == "succeeded"
    assert succeeded["error"] is None
    assert succeeded["metrics"] == {"train_loss": 1.2}
    assert succeeded["artifacts"] == {"model_path": str(tmp_path / "final")}
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "data_not_found", "message": "no such file", "param": "data_conf.path"}


def test_error_always_has_code_message_and_param(tmp_path: Path) -> None:
    with EventWriter(tmp_path / "e.jsonl") as writer:
        event = writer.status("failed", error={"code": "internal_error", "message": "boom"})
        with pytest.raises(ValueError, match="non-empty message"):
            writer.status("failed", error={"code": "internal_error", "message": ""})

    assert event is not None
    assert event["error"] == {"code": "internal_error", "message": "boom", "param": None}


def test_values_are_validated(tmp_path: Path) -> None:
    with EventWriter(tmp_path / "e.jsonl") as writer:
        with pytest.raises(ValueError, match="trainig"):
            writer.phase("trainig")
        with pytest.raises(ValueError, match="needs an error"):
            writer.status("failed")
        with pytest.raises(ValueError, match="done"):
            writer.status("done")
        with pytest.raises(ValueError, match="log level"):
            writer.log("fatal", "x")  # type: ignore[arg-type]
    assert read_events(tmp_path / "e.jsonl") == []


def test_non_finite_numbers_stay_strict_json(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    with EventWriter(path) as writer:
        writer.metrics(step=1, total_steps=2, loss=float("nan"), grad_norm=float("inf"), extra={"x": float("-inf")})

    line = path.read_text(encoding="utf-8")
    event = json.loads(line, parse_constant=lambda name: pytest.fail(f"non-JSON constant {name}"))
    assert (event["loss"], event["grad_norm"], event["extra"]["x"]) == ("NaN", "Infinity", "-Infinity")


@pytest.mark.parametrize("path_given", [False, True])
def test_disabled_writer_is_a_no_op(tmp_path: Path, path_given: bool) -> None:
    path = tmp_path / "e.jsonl"
    writer = EventWriter(path if path_given else None, enabled=False if path_given else True)

    assert not writer.enabled
    assert writer.phase("training") is None
    assert writer.status("failed", error={"code": "x", "message": "y", "param": None}) is None
    writer.close()
    assert not path.exists()


def test_appending_continues_the_sequence(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    with EventWriter(path) as writer:
        writer.phase("training")
        writer.phase("saving")
    with EventWriter(path) as writer:
        writer.phase("training")

    assert [e["seq"] for e in read_events(path)] == [1, 2, 3]


def test_a_torn_last_line_is_dropped_by_the_next_writer(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    with EventWriter(path) as writer:
        writer.phase("training")
    with path.open("a", encoding="utf-8") as f:
        f.write('{"v": 1, "seq": 2, "ty')  # a writer killed mid-line

    assert [e["seq"] for e in read_events(path)] == [1]  # readers skip the unfinished line
    with EventWriter(path) as writer:
        writer.phase("saving")

    assert [(e["seq"], e["phase"]) for e in read_events(path)] == [(1, "training"), (2, "saving")]


def test_read_events_names_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text('{"v": 1, "seq": 1}\nnot json\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"e\.jsonl:2"):
        read_events(path)
    path.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="JSON object"):
        read_events(path)


def test_import_does_not_load_torch() -> None:
    # The service imports the format; it must not pay for torch (GUIDE §1).
    code = (
        "import sys, finetuning.events, finetuning.tracking, finetuning.settings; "
        "assert not {'torch', 'transformers', 'mlflow'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
