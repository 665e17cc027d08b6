"""A tiny random causal LM with a trained byte-level BPE tokenizer, for tests and demos.

Everything is generated locally and deterministically, so tests never touch the HF hub.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

# Bump whenever the output of build_tiny_model changes, so cached copies are rebuilt.
TINY_MODEL_VERSION = 1

BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
UNK_TOKEN = "<unk>"
PAD_TOKEN = "<pad>"

# Plain text plus eos, so that it differs from every built-in template and needs no special tokens.
# The generation prompt is a prefix of the rendered assistant turn, so prompt/completion splits line up.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}System: {{ message['content'] }}\n"
    "{% elif message['role'] == 'user' %}User: {{ message['content'] }}\n"
    "{% elif message['role'] == 'assistant' %}Assistant: {{ message['content'] }}{{ eos_token }}\n"
    "{% else %}{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

_COMPLETE_MARKER = ".tiny-model-complete"

# "|"-separated so multi-word phrases fit on a line.
_SUBJECTS = (
    "the cat|a dog|my friend|the teacher|our team|the model|a small bird|the old man|every student"
    "|the river|this machine|the city|a young girl"
).split("|")
_VERBS = "sees likes finds builds reads writes follows answers helps carries watches learns opens closes".split()
_OBJECTS = (
    "a book|the door|the answer|a red ball|the window|some water|the road|a long letter|the garden"
    "|a new song|the problem|an apple|the question"
).split("|")
_ADVERBS = "quickly|slowly|today|again|every day|at night|with care|in the morning".split("|")
_WORDS = (
    "what is the of and to in how many why does it yes no because there are color sky blue sum number"
    " capital water time"
).split()


def _corpus(seed: int, n_lines: int = 3000) -> list[str]:
    """Synthetic English-like text: sentences, Q&A and chat-formatted lines, numbers."""
    rng = random.Random(seed)
    lines: list[str] = []
    for _ in range(n_lines):
        kind = rng.randrange(5)
        if kind == 0:
            sentence = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
            if rng.random() < 0.5:
                sentence += f" {rng.choice(_ADVERBS)}"
            lines.append(sentence.capitalize() + rng.choice([".", "!", "."]))
        elif kind == 1:
            a, b = rng.randrange(100), rng.randrange(100)
            lines.append(f"Question: What is {a} plus {b}?\nAnswer: {a + b}.")
        elif kind == 2:
            # Matches the chat template, so its scaffolding becomes cheap tokens.
            question = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 8)))
            answer = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
            lines.append(f"User: {question.capitalize()}?\nAssistant: {answer.capitalize()}.{EOS_TOKEN}\n")
        elif kind == 3:
            lines.append(" ".join(str(rng.randrange(10 ** rng.randint(1, 5))) for _ in range(rng.randint(2, 6))))
        else:
            lines.append(" ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 12))))
    return lines


def _build_tokenizer(vocab_size: int, seed: int, with_pad_token: bool) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special_tokens = [BOS_TOKEN, EOS_TOKEN, UNK_TOKEN] + ([PAD_TOKEN] if with_pad_token else [])
    backend = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    # trim_offsets=False keeps offsets contiguous (spaces included), which offset-based label masking needs.
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_corpus(seed), trainer=trainer)

    extra = {"pad_token": PAD_TOKEN} if with_pad_token else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=2048,
        chat_template=CHAT_TEMPLATE,
        **extra,
    )


def build_tiny_model(
    out_dir: str | Path,
    *,
    arch: Literal["llama", "qwen2"] = "llama",
    vocab_size: int = 1000,
    seed: int = 0,
    with_pad_token: bool = False,
) -> Path:
    """Build a small random causal LM and its tokenizer into out_dir; return out_dir."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    config_classes = {"llama": LlamaConfig, "qwen2": Qwen2Config}
    if arch not in config_classes:
        raise ValueError(f"arch must be one of {sorted(config_classes)}, got {arch!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tokenizer(vocab_size, seed, with_pad_token)

    config = config_classes[arch](
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    # Forked so that seeding here leaves the caller's random stream alone.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _cache_key(kwargs: dict[str, Any]) -> str:
    # Bind against the signature so that omitted defaults and explicit defaults share one entry.
    bound = inspect.signature(build_tiny_model).bind("<out_dir>", **kwargs)
    bound.apply_defaults()
    params = {k: v for k, v in bound.arguments.items() if k != "out_dir"}
    payload = json.dumps({"version": TINY_MODEL_VERSION, **params}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def cached_tiny_model(cache_root: str | Path, **kwargs: Any) -> Path:
    """Return cache_root/<key> holding build_tiny_model(**kwargs), building it only if missing."""
    root = Path(cache_root)
    final = root / _cache_key(kwargs)
    if (final / _COMPLETE_MARKER).is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    # Folders only appear at `final` through the atomic rename below, marker included, so an existing
    # one without the marker is debris (a copy, an interrupted delete). Checking exists() before the
    # marker cannot misjudge a concurrent rename. Move it aside first so no one sees it half-deleted.
    if final.exists() and not (final / _COMPLETE_MARKER).is_file():
        trash = Path(tempfile.mkdtemp(prefix=f".{final.name}.trash-", dir=root))
        try:
            os.rename(final, trash / "old")
        except OSError:
            pass  # someone else moved it first
        shutil.rmtree(trash, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=root))
    try:
        build_tiny_model(tmp, **kwargs)
        (tmp / _COMPLETE_MARKER).touch()
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        try:
            os.rename(tmp, final)
        except OSError:
            # Another process renamed its copy into place first; theirs is equivalent.
            if not (final / _COMPLETE_MARKER).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


_COLORS = "red blue green yellow black white orange purple".split()
_THINGS = "sky grass sun snow coal milk carrot plum apple river book door".split()


def _color_answers(seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    return {thing: rng.choice(_COLORS) for thing in _THINGS}


def tiny_chat_records(n: int = 32, *, seed: int = 0, system_prompt: str | None = None) -> list[dict[str, Any]]:
    """Short memorisable conversations ("What color is the sky?" -> "blue"), deterministic for a seed."""
    answers = _color_answers(seed)
    records = []
    for i in range(n):
        thing = _THINGS[i % len(_THINGS)]
        messages = [] if system_prompt is None else [{"role": "system", "content": system_prompt}]
        messages += [
            {"role": "user", "content": f"What color is the {thing}?"},
            {"role": "assistant", "content": answers[thing]},
        ]
        records.append({"id": f"tiny-{i}", "dataset": "tiny-colors", "messages": messages})
    return records


def write_jsonl(records: list[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def tiny_preference_records(n: int = 32, *, seed: int = 0) -> list[dict[str, Any]]:
    """Learnable preferences: the answer :func:`tiny_chat_records` teaches (same seed) is chosen, another color
    rejected."""
    answers = _color_answers(seed)
    records = []
    for i in range(n):
        thing = _THINGS[i % len(_THINGS)]
        wrong = [c for c in _COLORS if c != answers[thing]]
        records.append(
            {
                "id": f"tiny-pref-{i}",
                "dataset": "tiny-color-preferences",
                "prompt_messages": [{"role": "user", "content": f"What color is the {thing}?"}],
                "chosen_messages": [{"role": "assistant", "content": answers[thing]}],
                "rejected_messages": [{"role": "assistant", "content": wrong[i % len(wrong)]}],
            }
        )
    return records
