"""Shared pieces of the end-to-end SFT tests: a config for the tiny model and running the real CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from finetuning.cli import main
from finetuning.events import read_events


def sft_config(model: Path, data: Path, out: Path, **sections: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "data_conf": {
            "chat_template_name": "chat-ml",
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(data)}]},
            "validation_data": {"type": "NONE"},
        },
        "training_args": {
            "output_dir": str(out),
            "max_steps": 30,
            "learning_rate": 5e-3,
            "logging_steps": 1,
            "save_strategy": "no",
            "use_cpu": True,
            "report_to": [],
            "seed": 7,
        },
        "batchsize_conf": {"total_train_batch_size": 8, "max_per_device_train_batch_size": 8},
        "peft_conf": {"peft_type": "LORA", "peft_kwargs": {"r": 8, "lora_alpha": 16, "target_modules": "all-linear"}},
        "run_conf": {"model": str(model)},
        "sft_args": {"max_seq_length": 128, "train_on_completions_only": True},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return config


def run_cli(
    tmp_path: Path, config: dict[str, Any], *extra: str, command: str = "sft"
) -> tuple[int, list[dict[str, Any]]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    events_path = tmp_path / "events.jsonl"
    code = main(["--num-preprocess-workers", "1", "--events-file", str(events_path), *extra, command, str(config_path)])
    return code, read_events(events_path) if events_path.exists() else []


def losses(events: list[dict[str, Any]]) -> list[float]:
    return [e["loss"] for e in events if e["type"] == "metrics" and e.get("loss") is not None]
