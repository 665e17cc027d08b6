"""The pre-flight plan (``finetuning plan``, :mod:`finetuning.plan`) against the real run on the tiny model: every
problem row named by file, line and reason; the statistics, batch sizes and steps equal to what the run resolves and
trains on; the memory and time estimates set beside a real CPU run (the relative errors printed, loose bounds only);
and a 100k-row plan timed (printed, not asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from finetuning.cli import main
from finetuning.config import DPOConfig, SFTConfig
from finetuning.data.preprocess import prepare_sft_datasets
from finetuning.events import read_events
from finetuning.methods.common import load_training_tokenizer
from finetuning.plan import PlanOptions, plan_training
from finetuning.tiny import tiny_chat_records, tiny_preference_records, write_jsonl
from tests.engine.sft_helpers import sft_config

REPO = Path(__file__).resolve().parents[2]


def _problem_file(path: Path) -> dict[int, str]:
    """Chat data with one row of each problem kind; returns {line: kind}."""
    lines = [json.dumps(record) for record in tiny_chat_records(40)]
    problems = {
        4: ("{not json", "not_json"),
        6: (json.dumps({"messages": [{"role": "robot", "content": "hi"}]}), "bad_role"),
        8: (
            json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]}),
            "empty_assistant_turn",
        ),
        10: (
            json.dumps(
                {"messages": [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}]}
            ),
            "too_long_filtered",
        ),
        12: (json.dumps({"messages": [{"role": "user", "content": "no answer here"}]}), "no_assistant_turn"),
        14: ("[1, 2]", "not_an_object"),
    }
    for line, (text, _) in problems.items():
        lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")
    return {line: kind for line, (_, kind) in problems.items()}


def _plan_cli(tmp_path: Path, config: dict[str, Any], kind: str = "sft", *extra: str) -> dict[str, Any]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config_path = tmp_path / f"plan-{kind}.yaml"
    config_path.write_text(yaml.safe_dump(config))
    out = tmp_path / "plan.json"
    code = _run_main_to(out, ["--num-preprocess-workers", "1", "plan", kind, str(config_path), "--json", *extra])
    assert code == 0, out.read_text()
    return dict(json.loads(out.read_text()))


def _run_main_to(out: Path, argv: list[str]) -> int:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(argv)
    out.write_text(buffer.getvalue())
    return code


def test_sft_plan_names_every_problem_row_and_matches_the_real_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "chat.jsonl"
    expected = _problem_file(data)
    config = sft_config(
        tiny_model_dir,
        data,
        tmp_path / "out",
        training_args={"max_steps": -1, "num_train_epochs": 2, "learning_rate": 1e-3},
        batchsize_conf={"total_train_batch_size": 8, "max_per_device_train_batch_size": 4},
        data_conf={"max_bad_rows": 3},
    )
    config["training_args"].pop("max_steps")
    config["peft_conf"] = {"peft_type": "NO_PEFT"}
    report = _plan_cli(tmp_path, config, "sft", "--cache-dir", str(tmp_path / "cache"), "--gpu", "H100-80GB")

    found = {(row["line"], row["kind"]) for row in report["problems"]["rows"]}
    for line, kind in expected.items():
        assert (line, kind) in found, (line, kind, report["problems"]["rows"])
    for row in report["problems"]["rows"]:
        assert row["file"] == str(data)
        assert row["line"]
        assert row["reason"]
    assert report["problems"]["by_kind"]["too_long_filtered"] == 1

    # the statistics are those of the run's own preprocessing
    parsed = SFTConfig.validate_config(config)
    tokenizer, _ = load_training_tokenizer(parsed.data_conf, parsed.run_conf, "sft")
    train, _ = prepare_sft_datasets(parsed.data_conf, parsed.sft_args, tokenizer, num_proc=1, cache_dir=None)
    lengths = np.asarray(train["length"])
    stats = report["statistics"]["train"]
    assert stats["rows"] == len(train)
    assert stats["tokens"] == int(lengths.sum())
    assert stats["max"] == int(lengths.max())
    assert stats["filtered"] == 1
    assert stats["truncated"] == 0
    assert 0 < stats["loss_token_share"] < 1

    # the real run: resolved values, steps, examples; its peak memory and training time beside the estimates
    events, peak_rss, train_s = _real_run(tmp_path, config)
    started = next(e for e in events if e["type"] == "run_started")
    resolved = started["config"]["resolved"]
    for key in ("per_device_train_batch_size", "gradient_accumulation_steps", "total_train_batch_size"):
        assert report["resolved"][key] == resolved[key], key
    assert report["resolved"]["learning_rate"] == resolved["learning_rate"]
    total_steps = {e["total_steps"] for e in events if e["type"] == "metrics" and e.get("total_steps")}
    assert total_steps == {report["steps"]["total"]}
    final = [e for e in events if e["type"] == "status"][-1]
    assert final["status"] == "succeeded", final
    assert final["metrics"]["global_step"] == report["steps"]["total"]

    memory = report["memory"]["per_device_bytes"]["total"]
    cpu_s = report["time"]["cpu"]["seconds"]
    print(
        f"\nplan vs real CPU run (tiny model): steps {report['steps']['total']} = {final['metrics']['global_step']}; "
        f"memory estimate {memory / 2**20:.1f} MiB vs peak RSS {peak_rss / 2**20:.0f} MiB "
        f"(ratio {memory / peak_rss:.4f}: the estimate counts the step's tensors, the RSS the whole process); "
        f"time estimate {cpu_s:.2f} s vs training {train_s:.2f} s (relative error {(cpu_s - train_s) / train_s:+.0%})"
    )
    # honest bounds: the tensors of a step are part of the process; per-step overheads dwarf a tiny model's FLOPs
    assert 0 < memory < peak_rss
    assert 0 < cpu_s < 10 * train_s  # far below it here: a tiny model's steps are per-step overhead


def _real_run(tmp_path: Path, config: dict[str, Any]) -> tuple[list[dict[str, Any]], int, float]:
    """The real CLI in a child process: its events, its peak RSS (bytes) and its training phase's seconds."""
    run_dir = tmp_path / "real"
    run_dir.mkdir()
    config_path = run_dir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    events_path = run_dir / "events.jsonl"
    rss_path = run_dir / "rss"
    script = (
        "import resource, sys\n"
        "from finetuning.cli import main\n"
        "code = main(sys.argv[2:])\n"
        "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))\n"
        "sys.exit(code)\n"
    )
    argv = ["--num-preprocess-workers", "1", "--events-file", str(events_path), "sft", str(config_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", script, str(rss_path), *argv], check=True, cwd=REPO, env=env)
    events = read_events(events_path)
    times = {e["phase"]: e["time"] for e in events if e["type"] == "phase"}
    end = [e for e in events if e["type"] == "status"][-1]["time"]
    start = times["training"]
    train_s = (_when(end) - _when(start)).total_seconds()
    return events, int(rss_path.read_text()) * 1024, train_s


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_sft_plan_reports_truncated_rows(tiny_model_dir: Path, tmp_path: Path) -> None:
    records = tiny_chat_records(8)
    records[2]["messages"][0]["content"] = "word " * 200
    data = write_jsonl(records, tmp_path / "chat.jsonl")
    config = sft_config(tiny_model_dir, data, tmp_path / "out", sft_args={"length_handling": "truncate"})
    report = plan_training(SFTConfig.validate_config(config), PlanOptions(cache_dir=tmp_path / "cache"))
    rows = report["problems"]["rows"]
    assert [(r["line"], r["kind"]) for r in rows] == [(3, "truncated")]
    assert "cut to max_seq_length=128" in rows[0]["reason"]
    assert report["statistics"]["train"]["truncated"] == 1
    assert report["statistics"]["train"]["max"] == 128


def test_the_plan_fills_the_runs_preprocessing_cache_and_says_so(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``finetuning plan`` tokenizes into the engine's cache: a second plan and then the run find it there."""
    from tests.engine.sft_helpers import run_cli

    monkeypatch.setenv("FINETUNING_CACHE_DIR", str(tmp_path / "engine-cache"))
    data = write_jsonl(tiny_chat_records(24), tmp_path / "chat.jsonl")
    config = sft_config(tiny_model_dir, data, tmp_path / "out", training_args={"max_steps": 1})
    first = _plan_cli(tmp_path / "first", config)
    second = _plan_cli(tmp_path / "second", config)
    assert (first["data"]["preprocessing_cache"], second["data"]["preprocessing_cache"]) == ("miss", "hit")
    code, events = run_cli(tmp_path / "run", config)
    assert code == 0, events[-1]
    done = [e for e in events if e["type"] == "preprocessing" and e["stage"] == "tokenizing" and e["state"] == "done"]
    assert [e["cache"] for e in done] == ["hit"]


def test_dpo_plan_names_missing_answers_and_prompt_truncation(tiny_model_dir: Path, tmp_path: Path) -> None:
    records = tiny_preference_records(12)
    del records[1]["chosen_messages"]
    del records[3]["rejected_messages"]
    records[5]["prompt_messages"][0]["content"] = "long " * 40  # over max_prompt_length, under max_length
    records[7]["prompt_messages"][0]["content"] = "long " * 300  # fills max_length: dropped
    lines = [json.dumps(record) for record in records]
    lines[9] = "not json"
    data = tmp_path / "prefs.jsonl"
    data.write_text("\n".join(lines) + "\n")
    config = {
        "data_conf": {
            "chat_template_name": "keep-original",
            "training_data": {
                "type": "CONCATENATION",
                "datasets": [{"path": str(data)}],
                "data_type": "DirectPreference",
            },
            "validation_data": {"type": "NONE"},
            "max_bad_rows": 3,
        },
        "training_args": {
            "output_dir": str(tmp_path / "out"),
            "max_steps": 2,
            "use_cpu": True,
            "report_to": [],
            "max_prompt_length": 16,
            "max_length": 128,
            "learning_rate": 1e-3,
        },
        "batchsize_conf": {"total_train_batch_size": 4, "max_per_device_train_batch_size": 2},
        "peft_conf": {"peft_type": "LORA", "peft_kwargs": {"r": 4, "target_modules": "all-linear"}},
        "run_conf": {"model": str(tiny_model_dir)},
    }
    report = _plan_cli(tmp_path, config, "dpo")
    found = {(row["line"], row["kind"]) for row in report["problems"]["rows"]}
    assert {
        (2, "missing_chosen"),
        (4, "missing_rejected"),
        (6, "prompt_truncated"),
        (8, "too_long_filtered"),
        (10, "not_json"),
    } <= found, found
    assert report["statistics"]["train"]["rows"] == 8  # 12 - 3 bad - 1 dropped
    assert report["steps"]["total"] == 2
    assert report["resolved"]["gradient_accumulation_steps"] == 2
    DPOConfig.validate_config(config)


def test_plan_of_100k_rows_timed(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Printed, not asserted: how long a plan of 100k rows takes here (one tokenizing process)."""
    base = tiny_chat_records(64)
    data = tmp_path / "big.jsonl"
    with data.open("w") as f:
        for i in range(100_000):
            f.write(json.dumps(base[i % len(base)]) + "\n")
    config = sft_config(tiny_model_dir, data, tmp_path / "out")
    started = time.monotonic()
    report = plan_training(SFTConfig.validate_config(config), PlanOptions(cache_dir=tmp_path / "cache"))
    elapsed = time.monotonic() - started
    sampled = plan_training(SFTConfig.validate_config(config), PlanOptions(max_rows=20_000))
    print(
        f"\nplan of 100k rows: {elapsed:.1f} s ({report['statistics']['train']['rows']} rows, "
        f"{report['statistics']['train']['tokens']} tokens); with max_rows=20000: {sampled['elapsed_s']:.1f} s, "
        f"{sampled['statistics']['train']['rows']} rows extrapolated"
    )
    assert report["statistics"]["train"]["rows"] == 100_000
    assert sampled["data"]["sampled"]
    assert sampled["statistics"]["train"]["rows"] == 100_000
