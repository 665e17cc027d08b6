"""The tiny offline model that the engine tests train: it must load, run, learn and be reproducible."""

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from finetuning import tiny
from finetuning.tiny import TINY_MODEL_VERSION, build_tiny_model, cached_tiny_model

SENTENCE = "The cat sees a red ball in the garden."

ROUND_TRIP_TEXTS = [
    SENTENCE,
    "  two leading spaces, trailing too  ",
    "Question: What is 12 plus 30?\nAnswer: 42.",
    "tabs\tand\r\nwindows newlines",
    "ünïcödé, 中文 and emoji 😀 never seen in training",
    "",
]


def test_import_does_not_load_torch() -> None:
    code = "import sys, finetuning.tiny; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_folder_holds_safetensors_weights_and_tokenizer(tiny_model_dir: Path) -> None:
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert not any(name.endswith(".bin") for name in names)
    tensors = load_file(tiny_model_dir / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in tensors.values())


def test_reloads_with_auto_classes(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)

    assert tokenizer.is_fast
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token) == ("<s>", "</s>", "<unk>")
    assert tokenizer.model_max_length == 2048
    assert model.config.model_type == "llama"
    assert model.config.vocab_size == len(tokenizer) == 1000
    assert model.config.hidden_size == 64
    assert model.config.num_hidden_layers == 2
    assert model.config.num_attention_heads == 4
    assert model.config.num_key_value_heads == 2
    assert model.config.tie_word_embeddings is False
    assert model.config.bos_token_id == tokenizer.bos_token_id
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert model.dtype == torch.float32


def test_pad_token_only_when_asked(tiny_model_dir: Path, tiny_model_dir_with_pad: Path) -> None:
    plain = AutoTokenizer.from_pretrained(tiny_model_dir)
    padded = AutoTokenizer.from_pretrained(tiny_model_dir_with_pad)

    assert plain.pad_token is None
    assert "<pad>" not in plain.get_vocab()
    assert AutoModelForCausalLM.from_pretrained(tiny_model_dir).config.pad_token_id is None

    assert padded.pad_token == "<pad>"
    assert padded.pad_token_id not in {padded.bos_token_id, padded.eos_token_id, padded.unk_token_id}
    padded_model = AutoModelForCausalLM.from_pretrained(tiny_model_dir_with_pad)
    assert padded_model.config.pad_token_id == padded.pad_token_id


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS)
def test_encode_decode_round_trips(tiny_model_dir: Path, text: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.unk_token_id not in ids  # byte-level: nothing is unknown
    assert tokenizer.decode(ids) == text


def test_offsets_cover_the_text(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    enc = tokenizer(SENTENCE, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    assert len(offsets) == len(enc["input_ids"])
    # Contiguous and complete, which offset-based label masking relies on.
    assert offsets[0][0] == 0
    assert offsets[-1][1] == len(SENTENCE)
    assert all(prev[1] == cur[0] for prev, cur in zip(offsets, offsets[1:], strict=False))


def test_training_corpus_gives_multi_character_tokens(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert len(tokenizer(SENTENCE)["input_ids"]) < len(SENTENCE) / 2


def test_chat_template_renders_two_turns(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [
        {"role": "user", "content": "What color is the sky?"},
        {"role": "assistant", "content": "It is blue."},
        {"role": "user", "content": "And the grass?"},
        {"role": "assistant", "content": "Green."},
    ]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    assert isinstance(rendered, str)
    assert rendered == (
        "User: What color is the sky?\nAssistant: It is blue.</s>\nUser: And the grass?\nAssistant: Green.</s>\n"
    )

    prompt = tokenizer.apply_chat_template(messages[:3], tokenize=False, add_generation_prompt=True)
    assert isinstance(prompt, str)
    assert prompt.endswith("User: And the grass?\nAssistant:")
    assert rendered.startswith(prompt)  # prompt/completion splits line up with the full conversation

    ids = tokenizer(rendered)["input_ids"]
    assert ids.count(tokenizer.eos_token_id) == 2  # the literal </s> maps to the eos token


def test_forward_gives_logits_over_the_vocabulary(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    batch = tokenizer(SENTENCE, return_tensors="pt")
    n = batch["input_ids"].shape[1]

    with torch.no_grad():
        logits = model(**batch).logits

    assert logits.shape == (1, n, len(tokenizer))
    assert torch.isfinite(logits).all()


def test_a_few_sgd_steps_lower_the_loss(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.train()
    batch = tokenizer(SENTENCE, return_tensors="pt")
    # Larger rates overshoot now and then on this random init; 0.05 descends steadily.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    losses = []
    for _ in range(8):
        loss = model(**batch, labels=batch["input_ids"]).loss
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    assert losses[-1] < losses[0] - 0.5, losses


def test_builds_are_deterministic(tmp_path: Path) -> None:
    first = build_tiny_model(tmp_path / "a")
    second = build_tiny_model(tmp_path / "b")

    assert (first / "tokenizer.json").read_bytes() == (second / "tokenizer.json").read_bytes()
    assert json.loads((first / "config.json").read_text()) == json.loads((second / "config.json").read_text())
    tensors_a = load_file(first / "model.safetensors")
    tensors_b = load_file(second / "model.safetensors")
    assert tensors_a.keys() == tensors_b.keys()
    assert all(torch.equal(tensors_a[name], tensors_b[name]) for name in tensors_a)


def test_seed_changes_the_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    other = build_tiny_model(tmp_path / "other", seed=1)
    name = "model.embed_tokens.weight"
    assert not torch.equal(
        load_file(tiny_model_dir / "model.safetensors")[name], load_file(other / "model.safetensors")[name]
    )


def test_build_leaves_the_callers_random_state_alone(tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_model(tmp_path / "m")
    assert torch.equal(torch.rand(3), expected)


def test_unknown_arch_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="arch"):
        build_tiny_model(tmp_path / "m", arch="gpt2")  # type: ignore[arg-type]


def test_qwen2_arch_loads_and_runs(tmp_path: Path) -> None:
    out = build_tiny_model(tmp_path / "qwen2", arch="qwen2", vocab_size=600, with_pad_token=True)
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)

    assert model.config.model_type == "qwen2"
    assert len(tokenizer) == model.config.vocab_size == 600
    assert tokenizer.pad_token == "<pad>"
    with torch.no_grad():
        logits = model(**tokenizer(SENTENCE, return_tensors="pt")).logits
    assert logits.shape[-1] == 600


def test_cache_reuses_complete_builds(tmp_path: Path) -> None:
    first = cached_tiny_model(tmp_path)
    stamp = (first / "model.safetensors").stat().st_mtime_ns

    assert cached_tiny_model(tmp_path) == first
    # Spelling out the defaults is the same model, so the same entry.
    assert cached_tiny_model(tmp_path, arch="llama", vocab_size=1000, seed=0, with_pad_token=False) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    assert first.parent == tmp_path
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left behind


def test_cache_keys_differ_by_arguments(tmp_path: Path) -> None:
    assert cached_tiny_model(tmp_path, seed=1) != cached_tiny_model(tmp_path, seed=2)


def test_cache_rejects_unknown_arguments(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        cached_tiny_model(tmp_path, hidden_size=32)


def test_cache_rebuilds_an_incomplete_folder(tmp_path: Path) -> None:
    built = cached_tiny_model(tmp_path, seed=3)
    (built / ".tiny-model-complete").unlink()
    (built / "model.safetensors").unlink()

    assert cached_tiny_model(tmp_path, seed=3) == built
    assert (built / "model.safetensors").is_file()


def test_cache_is_safe_across_processes(tmp_path: Path) -> None:
    # spawn, not fork: forking a process that has already run torch is unreliable.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        pending = [pool.apply_async(cached_tiny_model, (tmp_path,), {"seed": 7}) for _ in range(2)]
        paths = [p.get(timeout=120) for p in pending]

    assert paths[0] == paths[1]
    assert [p.name for p in tmp_path.iterdir()] == [paths[0].name]
    assert AutoTokenizer.from_pretrained(paths[0]).eos_token == "</s>"


def test_version_is_part_of_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    before = tiny._cache_key({})
    monkeypatch.setattr(tiny, "TINY_MODEL_VERSION", TINY_MODEL_VERSION + 1)
    assert tiny._cache_key({}) != before
