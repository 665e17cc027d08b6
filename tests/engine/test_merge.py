"""merge_adapter on adapters from real SFT runs: the merged model computes what base + adapter computed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sft_helpers import run_cli, sft_config

from finetuning.events import read_events
from finetuning.tiny import tiny_chat_records, write_jsonl
from finetuning.tools.merge import main

pytestmark = pytest.mark.slow

CONVERSATION = [{"role": "user", "content": "what color is the sky?"}, {"role": "assistant", "content": "blue"}]


@pytest.fixture(scope="module")
def runs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two short LoRA runs: chat-ml (adds <|im_start|>/<|im_end|>: grown vocabulary, checkpoint-new-basemodel)
    and keep-original (no new tokens)."""
    root = tmp_path_factory.mktemp("merge-runs")
    data = write_jsonl(tiny_chat_records(16), root / "data.jsonl")
    grown = sft_config(tiny_model_dir, data, root / "grown" / "out", training_args={"max_steps": 3})
    plain = sft_config(
        tiny_model_dir,
        data,
        root / "plain" / "out",
        training_args={"max_steps": 3},
        data_conf={"chat_template_name": "keep-original"},
        sft_args={"train_on_completions_only": False},
    )
    for name, config in (("grown", grown), ("plain", plain)):
        code, _ = run_cli(root / name, config)
        assert code == 0, name
    assert (root / "grown" / "out" / "checkpoint-new-basemodel").is_dir()
    assert not (root / "plain" / "out" / "checkpoint-new-basemodel").exists()
    return {
        "grown": root / "grown" / "out" / "checkpoint-final",
        "grown_base": root / "grown" / "out" / "checkpoint-new-basemodel",
        "plain": root / "plain" / "out" / "checkpoint-final",
    }


def merge(*args: str | Path) -> int:
    return main([str(a) for a in args])


def input_ids(tokenizer_dir: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer: Any = AutoTokenizer.from_pretrained(tokenizer_dir)
    return tokenizer.apply_chat_template(CONVERSATION, return_dict=True, return_tensors="pt")["input_ids"]


def logits(model: Any, ids: Any) -> Any:
    import torch

    with torch.no_grad():
        return model(ids).logits


def adapter_logits(base: Path, adapter: Path, ids: Any) -> Any:
    """What the unmerged pair computes: the reference for the merged model."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype="float32"), adapter)
    return logits(model.eval(), ids)


def merged_logits(folder: Path, ids: Any) -> Any:
    from transformers import AutoModelForCausalLM

    return logits(AutoModelForCausalLM.from_pretrained(folder).eval(), ids)


def assert_saved_model(folder: Path, vocab_size: int) -> None:
    from transformers import AutoTokenizer

    names = {p.name for p in folder.iterdir()}
    assert "model.safetensors" in names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth"))], names
    assert "adapter_config.json" not in names
    assert json.loads((folder / "config.json").read_text())["vocab_size"] == vocab_size
    assert len(AutoTokenizer.from_pretrained(folder)) == vocab_size


def test_grown_vocabulary_adapter_merges_onto_the_saved_grown_base(
    runs: dict[str, Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    out, events_file = tmp_path / "merged", tmp_path / "events.jsonl"
    ids = input_ids(runs["grown"])
    assert int(ids.max()) >= 1000  # the conversation uses the new chat-ml tokens

    # the original base is given: the grown one beside the adapter is found and used
    assert merge(tiny_model_dir, runs["grown"], out, "--events-file", events_file) == 0

    expected = adapter_logits(runs["grown_base"], runs["grown"], ids)
    assert (merged_logits(out, ids) - expected).abs().max() < 1e-5
    assert_saved_model(out, 1002)
    events = read_events(events_file)
    assert events[0]["type"] == "run_started"
    assert events[0]["method"] == "merge_adapter"
    assert "merging" in [e["phase"] for e in events if e["type"] == "phase"]
    assert events[-1]["type"] == "status"
    assert events[-1]["status"] == "succeeded"
    assert events[-1]["artifacts"] == {"model_path": str(out), "base_model": str(runs["grown_base"])}
    assert events[-1]["metrics"] == {"vocab_size": 1002, "vocab_grew": True, "used_grown_base": True}


def test_grown_vocabulary_adapter_without_saved_base_resizes_the_base(
    runs: dict[str, Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    adapter = shutil.copytree(runs["grown"], tmp_path / "moved" / "adapter")  # no checkpoint-new-basemodel beside it
    out, events_file = tmp_path / "merged", tmp_path / "events.jsonl"

    assert merge(tiny_model_dir, adapter, out, "--events-file", events_file) == 0

    ids = input_ids(adapter)
    expected = adapter_logits(runs["grown_base"], runs["grown"], ids)
    # the adapter carries the trained embeddings, so the resized rows' initial values do not matter
    assert (merged_logits(out, ids) - expected).abs().max() < 1e-5
    assert_saved_model(out, 1002)
    status = read_events(events_file)[-1]
    assert status["metrics"] == {"vocab_size": 1002, "vocab_grew": True, "used_grown_base": False}
    assert status["artifacts"]["base_model"] == str(tiny_model_dir)


def test_adapter_without_new_tokens_merges_with_a_json_device_map(
    runs: dict[str, Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "merged"

    assert merge(tiny_model_dir, runs["plain"], out, "--device_map", '{"": "cpu"}') == 0

    ids = input_ids(runs["plain"])
    expected = adapter_logits(tiny_model_dir, runs["plain"], ids)
    difference = (merged_logits(out, ids) - expected).abs().max()
    assert difference < 1e-5
    # the adapter changed the model: the comparison is not trivially base vs base
    assert (merged_logits(tiny_model_dir, ids) - expected).abs().max() > 100 * difference
    assert_saved_model(out, 1000)


def test_tokenizer_option_chooses_the_saved_tokenizer(
    runs: dict[str, Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "merged"

    assert merge(tiny_model_dir, runs["plain"], out, "--tokenizer", tiny_model_dir, "--device_map", "cpu") == 0

    original = json.loads((tiny_model_dir / "tokenizer.json").read_text())
    assert json.loads((out / "tokenizer.json").read_text())["added_tokens"] == original["added_tokens"]


@pytest.mark.parametrize("device_map", ['{"": "cpu"', "[1, 2]", "gpu0"])
def test_bad_device_map_fails_naming_the_option(
    runs: dict[str, Path],
    tiny_model_dir: Path,
    tmp_path: Path,
    device_map: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "merged"

    assert merge(tiny_model_dir, runs["plain"], out, "--device_map", device_map) == 2

    err = capsys.readouterr().err
    assert "--device_map" in err
    assert err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("adapter", ["missing", "not-an-adapter"])
def test_missing_adapter_fails_naming_peftmodel(
    tiny_model_dir: Path, tmp_path: Path, adapter: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if adapter == "not-an-adapter":
        (tmp_path / adapter).mkdir()
    out, events_file = tmp_path / "merged", tmp_path / "events.jsonl"

    assert merge(tiny_model_dir, tmp_path / adapter, out, "--events-file", events_file) == 2

    assert capsys.readouterr().err.startswith("error: peftmodel: ")
    status = read_events(events_file)[-1]
    assert status["status"] == "failed"
    assert status["error"]["code"] == "model_not_found"
    assert status["error"]["param"] == "peftmodel"
    assert not out.exists()


def test_existing_model_in_outpath_needs_overwrite(
    runs: dict[str, Path], tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "merged"
    out.mkdir()
    (out / "config.json").write_text("{}")
    stale = out / "model-00001-of-00002.safetensors"
    stale.write_bytes(b"old shard")
    (out / "notes.txt").write_text("mine")

    assert merge(tiny_model_dir, runs["plain"], out) == 2
    assert "error: outpath: " in capsys.readouterr().err
    assert stale.read_bytes() == b"old shard"

    assert merge(tiny_model_dir, runs["plain"], out, "--overwrite") == 0
    assert not stale.exists()  # a previous model's shards do not linger beside the new weights
    assert (out / "notes.txt").read_text() == "mine"
    assert_saved_model(out, 1000)


def test_outpath_may_not_be_an_input(
    runs: dict[str, Path], tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in runs["plain"].iterdir()}

    assert merge(tiny_model_dir, runs["plain"], runs["plain"], "--overwrite") == 2

    assert "one of the inputs" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in runs["plain"].iterdir()} == before
