"""create_vllm_compatible_adapter on adapters from real SFT runs: what is stripped, what is kept byte for byte."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from sft_helpers import run_cli, sft_config

from finetuning.events import read_events
from finetuning.tiny import tiny_chat_records, write_jsonl
from finetuning.tools.adapter_files import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_FILE,
    BACKUP_FILE,
    CONFIG_BACKUP_FILE,
)
from finetuning.tools.vllm_adapter import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two short LoRA runs and their configs.

    ``embed``: keep-original template, LoRA also on embed_tokens, so PEFT saves the base embedding matrix
    (``embed_tokens.base_layer.weight``) into the adapter: an extra tensor vLLM rejects.
    ``grown``: chat-ml adds two tokens, so the embeddings grow and are trained as modules_to_save.
    """
    root = tmp_path_factory.mktemp("vllm-runs")
    data = write_jsonl(tiny_chat_records(16), root / "data.jsonl")
    embed = sft_config(
        tiny_model_dir,
        data,
        root / "embed" / "out",
        training_args={"max_steps": 3},
        data_conf={"chat_template_name": "keep-original"},
        sft_args={"train_on_completions_only": False},
        peft_conf={
            "peft_kwargs": {
                "r": 8,
                "lora_alpha": 16,
                "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "embed_tokens"],
            }
        },
    )
    grown = sft_config(tiny_model_dir, data, root / "grown" / "out", training_args={"max_steps": 3})
    result: dict[str, Any] = {}
    for name, config in (("embed", embed), ("grown", grown)):
        code, _ = run_cli(root / name, config)
        assert code == 0, name
        result[name] = root / name / "out" / "checkpoint-final"
        result[f"{name}_config"] = config
    return result


def adapter_copy(runs: dict[str, Any], name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(runs[name], tmp_path / name))


def write_config(config: dict[str, Any], tmp_path: Path, name: str = "training.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def convert(*args: str | Path) -> int:
    return main([str(a) for a in args])


def tensor_names(folder: Path, name: str = ADAPTER_FILE) -> set[str]:
    from safetensors import safe_open

    with safe_open(str(folder / name), framework="pt") as f:
        return set(f.keys())


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def load_logits(base: Path, adapter: Path) -> Any:
    """Loading must work with peft's own loader; the logits show what was loaded."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
    with torch.no_grad():
        return model(torch.tensor([[0, 5, 17, 33, 80, 1]])).logits


def test_strips_to_the_lora_tensors_and_keeps_a_backup(
    runs: dict[str, Any], tiny_model_dir: Path, tmp_path: Path
) -> None:
    from peft import PeftConfig
    from safetensors import safe_open

    adapter = adapter_copy(runs, "embed", tmp_path)
    original = (adapter / ADAPTER_FILE).read_bytes()
    before = tensor_names(adapter)
    assert "base_model.model.model.embed_tokens.base_layer.weight" in before
    expected_logits = load_logits(tiny_model_dir, adapter)
    config_file = write_config(runs["embed_config"], tmp_path)
    events_file = tmp_path / "events.jsonl"

    assert convert(adapter, "--training-config", config_file, "--events-file", events_file) == 0

    kept = tensor_names(adapter)
    assert kept == {name for name in before if ".lora_" in name}
    # peft 0.21 names embedding LoRA tensors without a ".weight" suffix
    assert {name for name in kept if "embed_tokens" in name} == {
        "base_model.model.model.embed_tokens.lora_embedding_A",
        "base_model.model.model.embed_tokens.lora_embedding_B",
    }
    assert (adapter / BACKUP_FILE).read_bytes() == original
    with safe_open(str(adapter / ADAPTER_FILE), framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
    # the config needed no change: LoRA on embed_tokens stays, its base weights come from the base model
    assert not (adapter / CONFIG_BACKUP_FILE).exists()
    assert PeftConfig.from_pretrained(str(adapter)).peft_type == "LORA"
    assert (load_logits(tiny_model_dir, adapter) - expected_logits).abs().max() == 0

    events = read_events(events_file)
    assert events[0]["method"] == "create_vllm_compatible_adapter"
    assert [e["phase"] for e in events if e["type"] == "phase"] == ["converting", "done"]
    status = events[-1]
    assert status["status"] == "succeeded"
    assert status["artifacts"]["backup_path"] == str(adapter / BACKUP_FILE)
    metrics = status["metrics"]
    assert metrics["action"] == "stripped"
    assert metrics["vllm_compatible"] is True
    assert metrics["removed_tensors"] == 1
    assert (metrics["r"], metrics["lora_alpha"], metrics["max_lora_rank"]) == (8, 16, 8)
    assert "embed_tokens" in metrics["target_modules"]
    assert metrics["extra_vocab_needed"] is False


def test_second_run_changes_nothing(runs: dict[str, Any], tmp_path: Path) -> None:
    adapter = adapter_copy(runs, "embed", tmp_path)
    events_file = tmp_path / "events.jsonl"
    assert convert(adapter) == 0
    stripped = snapshot(adapter)

    assert convert(adapter, "--events-file", events_file) == 0

    assert snapshot(adapter) == stripped
    assert read_events(events_file)[-1]["metrics"]["action"] == "already_stripped"


def test_a_new_adapter_written_over_a_stripped_one_is_stripped_again(runs: dict[str, Any], tmp_path: Path) -> None:
    """A rerun of training into the same folder leaves the old backup behind: it must not mask the new file."""
    adapter = adapter_copy(runs, "embed", tmp_path)
    assert convert(adapter) == 0
    shutil.copy2(runs["embed"] / ADAPTER_FILE, adapter / ADAPTER_FILE)

    assert convert(adapter) == 0

    assert all(".lora_" in name for name in tensor_names(adapter))
    assert (adapter / BACKUP_FILE).read_bytes() == (runs["embed"] / ADAPTER_FILE).read_bytes()


def test_without_config_a_grown_adapter_is_stripped_and_its_config_made_consistent(
    runs: dict[str, Any], tiny_model_dir: Path, tmp_path: Path
) -> None:
    from peft import PeftConfig

    adapter = adapter_copy(runs, "grown", tmp_path)
    original_config = json.loads((adapter / ADAPTER_CONFIG_FILE).read_text())
    assert original_config["modules_to_save"] == ["embed_tokens", "lm_head"]
    events_file = tmp_path / "events.jsonl"

    assert convert(adapter, "--events-file", events_file) == 0

    assert all(".lora_" in name for name in tensor_names(adapter))
    cleaned = json.loads((adapter / ADAPTER_CONFIG_FILE).read_text())
    assert cleaned["modules_to_save"] is None
    assert {k: v for k, v in cleaned.items() if k != "modules_to_save"} == {
        k: v for k, v in original_config.items() if k != "modules_to_save"
    }
    assert json.loads((adapter / CONFIG_BACKUP_FILE).read_text()) == original_config
    assert PeftConfig.from_pretrained(str(adapter)).modules_to_save is None
    load_logits(tiny_model_dir, adapter)  # the stripped adapter fits the original (ungrown) base

    events = read_events(events_file)
    warnings = [e["message"] for e in events if e["type"] == "log" and e["level"] == "warning"]
    assert any("drops trained weights" in w for w in warnings)
    metrics = events[-1]["metrics"]
    assert metrics["action"] == "stripped"
    assert metrics["extra_vocab_needed"] is True
    assert metrics["extra_vocab_tokens"] == 2
    assert metrics["vllm_compatible"] is False


def _no_peft(config: dict[str, Any]) -> dict[str, Any]:
    config["peft_conf"] = {"peft_type": "NO_PEFT"}
    return config


def _keep_original(config: dict[str, Any]) -> dict[str, Any]:
    config["data_conf"]["chat_template_name"] = "keep-original"
    config["sft_args"]["train_on_completions_only"] = False
    return config


def _modules_to_save(config: dict[str, Any]) -> dict[str, Any]:
    config["peft_conf"]["peft_kwargs"]["modules_to_save"] = ["lm_head"]
    return config


@pytest.mark.parametrize(
    ("run", "edit", "reason"),
    [
        ("embed", _no_peft, "NO_PEFT"),
        ("embed", _modules_to_save, "modules_to_save ['lm_head']"),
        ("grown", lambda c: c, "chat template adds tokens"),
        # the config's template adds nothing: the adapter's own embeddings show that the vocabulary grew
        ("grown", _keep_original, "vocabulary grew"),
    ],
    ids=["no-peft", "modules-to-save", "grown-by-template", "grown-by-saved-embeddings"],
)
def test_adapters_that_need_their_extra_weights_are_kept_byte_identical(
    runs: dict[str, Any], tmp_path: Path, run: str, edit: Any, reason: str
) -> None:
    adapter = adapter_copy(runs, run, tmp_path)
    before = snapshot(adapter)
    config_file = write_config(edit(copy.deepcopy(runs[f"{run}_config"])), tmp_path)
    events_file = tmp_path / "events.jsonl"

    assert convert(adapter, "--training-config", config_file, "--events-file", events_file) == 0

    assert snapshot(adapter) == before
    metrics = read_events(events_file)[-1]["metrics"]
    assert metrics["action"] == "kept"
    assert metrics["vllm_compatible"] is False
    assert any(reason in r for r in metrics["reasons"]), metrics["reasons"]


def test_invalid_training_config_reports_both_schemas(
    runs: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    adapter = adapter_copy(runs, "embed", tmp_path)
    before = snapshot(adapter)
    config = copy.deepcopy(runs["embed_config"])
    config["sft_args"]["max_seq_lenght"] = 64
    events_file = tmp_path / "events.jsonl"

    code = convert(adapter, "--training-config", write_config(config, tmp_path), "--events-file", events_file)

    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    sft_part, dpo_part = err.split("; as a DPO config: ")
    assert "as an SFT config: sft_args.max_seq_lenght: unknown key" in sft_part
    assert "sft_args: unknown key" in dpo_part  # DPO's own complaint: it has no sft_args
    error = read_events(events_file)[-1]["error"]
    assert (error["code"], error["param"]) == ("invalid_config", "--training-config")
    assert snapshot(adapter) == before


def test_missing_inputs_fail_naming_the_argument(
    runs: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert convert(tmp_path / "nothing-here") == 2
    assert capsys.readouterr().err.startswith("error: model_path: ")

    adapter = adapter_copy(runs, "embed", tmp_path)
    assert convert(adapter, "--training-config", tmp_path / "missing.yaml") == 2
    assert capsys.readouterr().err.startswith("error: --training-config: ")
