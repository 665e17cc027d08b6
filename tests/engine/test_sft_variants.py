"""SFT options beyond the main path: continuing an adapter, 4-bit QLoRA, determinism, pad strategies, truncation."""

from __future__ import annotations

from pathlib import Path

import pytest
from sft_helpers import losses, run_cli, sft_config

from finetuning.tiny import tiny_chat_records, write_jsonl

pytestmark = pytest.mark.slow


def test_continue_a_pretrained_adapter_on_the_grown_base(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tiny_chat_records(32), tmp_path / "colors.jsonl")
    first = tmp_path / "first"
    code, first_events = run_cli(tmp_path / "a", sft_config(tiny_model_dir, data, first))
    assert code == 0
    # the chain the original users ran: the grown base + the adapter's own tokenizer, then more training
    second = tmp_path / "second"
    config = sft_config(
        first / "checkpoint-new-basemodel",
        data,
        second,
        peft_conf={"peft_type": "PRETRAINED_PEFT", "name_or_path": str(first / "checkpoint-final")},
        run_conf={
            "model": str(first / "checkpoint-new-basemodel"),
            "tokenizer": str(first / "checkpoint-final"),
        },
        training_args={"max_steps": 5},
    )
    config["peft_conf"] = {"peft_type": "PRETRAINED_PEFT", "name_or_path": str(first / "checkpoint-final")}
    code, events = run_cli(tmp_path / "b", config)
    assert code == 0
    # it continues where the first run ended rather than from a fresh adapter
    assert losses(events)[0] < losses(first_events)[0] / 2
    assert (second / "checkpoint-final" / "adapter_model.safetensors").is_file()
    assert not (second / "checkpoint-new-basemodel").exists()


def test_qlora_4bit_trains_on_the_cpu(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tiny_chat_records(16), tmp_path / "colors.jsonl")
    config = sft_config(
        tiny_model_dir,
        data,
        tmp_path / "out",
        data_conf={"chat_template_name": "keep-original"},
        sft_args={"train_on_completions_only": False},
        training_args={"max_steps": 4},
    )
    config["quant_conf"] = {
        "quantization_type": "bits-and-bytes",
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_compute_dtype": "float32",
    }
    code, events = run_cli(tmp_path, config)
    assert code == 0, events[-1]
    assert len(losses(events)) == 4
    assert (tmp_path / "out" / "checkpoint-final" / "adapter_model.safetensors").is_file()


def test_quantized_model_cannot_grow_its_vocabulary(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tiny_chat_records(4), tmp_path / "colors.jsonl")
    config = sft_config(tiny_model_dir, data, tmp_path / "out")  # chat-ml adds two tokens
    config["quant_conf"] = {"quantization_type": "bits-and-bytes", "load_in_4bit": True}
    code, events = run_cli(tmp_path, config)
    assert code == 2
    assert events[-1]["error"]["param"] == "quant_conf"


def test_same_seed_gives_the_same_loss_curve(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tiny_chat_records(16), tmp_path / "colors.jsonl")
    curves = []
    for name in ("one", "two"):
        config = sft_config(tiny_model_dir, data, tmp_path / name, training_args={"max_steps": 5})
        config["run_conf"]["determinism"] = "half"
        code, events = run_cli(tmp_path / name, config)
        assert code == 0
        curves.append(losses(events))
    assert curves[0] == curves[1]


def test_unk_convert_to_eos_full_finetune(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tiny_chat_records(16), tmp_path / "colors.jsonl")
    config = sft_config(
        tiny_model_dir,
        data,
        tmp_path / "out",
        data_conf={"missing_pad_token_strategy": "unk-convert-to-eos"},
        sft_args={"train_on_completions_only": False},
        training_args={"max_steps": 3},
    )
    config["peft_conf"] = {"peft_type": "NO_PEFT"}
    code, events = run_cli(tmp_path, config)
    assert code == 0
    assert all(loss > 0 for loss in losses(events))


def test_truncate_keeps_over_long_examples_and_filter_drops_them(tiny_model_dir: Path, tmp_path: Path) -> None:
    records = tiny_chat_records(8)
    records[0]["messages"][1]["content"] = "blue " * 200
    data = write_jsonl(records, tmp_path / "colors.jsonl")
    sizes = {}
    for handling in ("filter", "truncate"):
        config = sft_config(
            tiny_model_dir,
            data,
            tmp_path / handling,
            sft_args={"max_seq_length": 64, "length_handling": handling, "train_on_completions_only": False},
            training_args={"max_steps": 1},
        )
        code, events = run_cli(tmp_path / handling, config)
        assert code == 0
        sizes[handling] = events[-1]["metrics"]
    assert sizes["filter"]["train_examples"] == 7
    assert sizes["truncate"]["train_examples"] == 8
