"""`finetuning dpo` end to end on the CPU: DPO and its variants, KTO, ORPO, SimPO, and SFT followed by DPO."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import pytest
from sft_helpers import run_cli, sft_config

from finetuning.tiny import tiny_chat_records, tiny_preference_records, write_jsonl

pytestmark = pytest.mark.slow


def dpo_config(model: Path, data: Path, out: Path, **training_args: Any) -> dict[str, Any]:
    return {
        "data_conf": {
            "chat_template_name": "keep-original",
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(data)}]},
            "validation_data": {"type": "NONE"},
        },
        "training_args": {
            "output_dir": str(out),
            "max_steps": 24,
            "learning_rate": 5e-3,
            "logging_steps": 2,
            "gradient_checkpointing": False,
            "use_cpu": True,
            "report_to": [],
            "seed": 3,
            **training_args,
        },
        "batchsize_conf": {"total_train_batch_size": 8, "max_per_device_train_batch_size": 8},
        "peft_conf": {"peft_type": "LORA", "peft_kwargs": {"r": 8, "lora_alpha": 16, "target_modules": "all-linear"}},
        "run_conf": {"model": str(model)},
    }


def run_dpo_cli(tmp_path: Path, config: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    return run_cli(tmp_path, config, command="dpo")


def logged(events: list[dict[str, Any]], key: str) -> list[float]:
    return [e["extra"][key] for e in events if e["type"] == "metrics" and key in e.get("extra", {})]


def test_dpo_margin_rises_and_accuracy_beats_chance(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tiny_preference_records(32), tmp_path / "prefs.jsonl")
    code, events = run_dpo_cli(tmp_path, dpo_config(tiny_model_dir, data, tmp_path / "out"))
    assert code == 0
    margins = logged(events, "rewards/margins")
    accuracies = logged(events, "rewards/accuracies")
    assert abs(margins[0]) < 0.05  # a fresh adapter starts as the reference
    assert statistics.mean(margins[-3:]) > 0.1
    assert statistics.mean(accuracies[-3:]) > 0.7
    final = events[-1]
    assert final["status"] == "succeeded"
    # the reference is the policy with its adapter disabled: no second model in memory
    assert final["artifacts"]["reference_model"] == "policy with the adapter disabled"
    assert (Path(final["artifacts"]["final_checkpoint"]) / "adapter_model.safetensors").is_file()
    started = next(e for e in events if e["type"] == "run_started")
    assert started["config"]["resolved"]["trainer"] == "dpo"


@pytest.mark.parametrize(
    ("loss_type", "trainer", "metric"),
    [
        ("ipo", "dpo", "rewards/margins"),
        ("hinge", "dpo", "rewards/margins"),
        ("kto", "kto", "kl"),
        ("orpo", "orpo", "log_odds_ratio"),
        ("simpo", "cpo", "nll_loss"),
    ],
)
def test_preference_variants_complete_and_log(
    tiny_model_dir: Path, tmp_path: Path, loss_type: str, trainer: str, metric: str
) -> None:
    data = write_jsonl(tiny_preference_records(16), tmp_path / "prefs.jsonl")
    config = dpo_config(tiny_model_dir, data, tmp_path / "out", max_steps=4, loss_type=loss_type)
    code, events = run_dpo_cli(tmp_path, config)
    assert code == 0, events[-1]
    started = next(e for e in events if e["type"] == "run_started")
    assert started["config"]["resolved"]["trainer"] == trainer
    values = logged(events, metric)
    assert len(values) == 2
    assert all(isinstance(v, float) for v in values)


def test_kto_on_unpaired_records(tiny_model_dir: Path, tmp_path: Path) -> None:
    rows = []
    for record in tiny_preference_records(16):
        rows.append(
            {
                "prompt_messages": record["prompt_messages"],
                "completion_messages": record["chosen_messages"],
                "label": True,
            }
        )
    data = write_jsonl(rows, tmp_path / "unpaired.jsonl")
    config = dpo_config(tiny_model_dir, data, tmp_path / "out", max_steps=2, loss_type="kto")
    config["data_conf"]["training_data"]["data_type"] = "UnpairedPreference"
    code, events = run_dpo_cli(tmp_path, config)
    assert code == 0, events[-1]
    assert events[-1]["metrics"]["train_examples"] == 16


def test_field_of_another_trainer_is_rejected_by_name(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tiny_preference_records(4), tmp_path / "prefs.jsonl")
    config = dpo_config(tiny_model_dir, data, tmp_path / "out", loss_type="kto", f_divergence_type="js_divergence")
    code, events = run_dpo_cli(tmp_path, config)
    assert code == 2
    assert events[-1]["error"]["param"] == "training_args.f_divergence_type"


def test_changed_chat_template_is_refused_with_a_way_forward(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tiny_preference_records(4), tmp_path / "prefs.jsonl")
    config = dpo_config(tiny_model_dir, data, tmp_path / "out")
    config["data_conf"]["chat_template_name"] = "chat-ml"  # the tiny tokenizer has its own template
    code, events = run_dpo_cli(tmp_path, config)
    assert code == 2
    message = events[-1]["error"]["message"]
    assert "template" in message
    assert "keep-original" in message


def test_sft_with_lora_then_dpo_continuing_the_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    chat = write_jsonl(tiny_chat_records(32), tmp_path / "chat.jsonl")
    sft_out = tmp_path / "sft"
    code, _ = run_cli(tmp_path / "sft-run", sft_config(tiny_model_dir, chat, sft_out, training_args={"max_steps": 10}))
    assert code == 0

    prefs = write_jsonl(tiny_preference_records(16), tmp_path / "prefs.jsonl")
    config = dpo_config(sft_out / "checkpoint-new-basemodel", prefs, tmp_path / "dpo", max_steps=4)
    config["data_conf"]["chat_template_name"] = "chat-ml"  # what SFT trained with, saved in its tokenizer
    config["run_conf"]["tokenizer"] = str(sft_out / "checkpoint-final")
    config["peft_conf"] = {"peft_type": "PRETRAINED_PEFT", "name_or_path": str(sft_out / "checkpoint-final")}
    code, events = run_dpo_cli(tmp_path / "dpo-run", config)
    assert code == 0, events[-1]
    # the reference is the SFT adapter, kept as a frozen adapter copy rather than a second model
    assert events[-1]["artifacts"]["reference_model"] == "frozen copy of the adapter"
    assert abs(logged(events, "rewards/margins")[0]) < 0.05


def test_full_sft_then_full_dpo(tiny_model_dir: Path, tmp_path: Path) -> None:
    chat = write_jsonl(tiny_chat_records(16), tmp_path / "chat.jsonl")
    sft_out = tmp_path / "sft"
    config = sft_config(tiny_model_dir, chat, sft_out, training_args={"max_steps": 4, "learning_rate": 1e-3})
    config["peft_conf"] = {"peft_type": "NO_PEFT"}
    code, _ = run_cli(tmp_path / "sft-run", config)
    assert code == 0

    prefs = write_jsonl(tiny_preference_records(16), tmp_path / "prefs.jsonl")
    dpo = dpo_config(sft_out / "checkpoint-final", prefs, tmp_path / "dpo", max_steps=3, learning_rate=1e-4)
    dpo["data_conf"]["chat_template_name"] = "chat-ml"
    dpo["peft_conf"] = {"peft_type": "NO_PEFT"}
    code, events = run_dpo_cli(tmp_path / "dpo-run", dpo)
    assert code == 0, events[-1]
    assert events[-1]["artifacts"]["reference_model"] == "separate model copy"
    assert (tmp_path / "dpo" / "checkpoint-final" / "model.safetensors").is_file()
