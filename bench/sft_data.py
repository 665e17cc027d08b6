"""The SFT benchmark's inputs: a random-initialised model of a plan's shape (with the tiny BPE tokenizer) and
synthetic conversations with log-normal token lengths."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from bench.sft_plans import SEED, DataPlan, Shape

# Words for the synthetic conversations (what they say does not matter, only how many tokens they take).
_WORDS = (
    "the a cat dog model river city answer question water book door window garden song problem apple number time "
    "sees likes finds builds reads writes follows helps carries watches learns opens closes quickly slowly today "
    "again every day night with care morning what is of and to in how many why does it yes no because there are "
    "color sky blue sum capital training data token batch memory kernel layer vector matrix gradient loss value "
    "first second third small large long short red green yellow black white orange purple seven eleven forty"
).split()


def prepare(folder: Path, shape: Shape, data: DataPlan, bf16: bool) -> tuple[Path, Path, dict[str, Any], int, int]:
    """The model folder (random weights from ``shape``, the tiny BPE tokenizer with a dedicated pad token), the data
    JSONL, its token-length statistics, the parameter count and the pad id."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, Qwen2Config
    from transformers.utils import logging as hf_logging

    from finetuning.tiny import build_tiny_model

    hf_logging.disable_progress_bar()

    model_dir = folder / "model"
    build_tiny_model(model_dir, vocab_size=min(shape.vocab, 8000), seed=SEED, with_pad_token=True)  # the tokenizer
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if len(tokenizer) > shape.vocab:
        raise SystemExit(f"{shape.name}: the tokenizer has {len(tokenizer)} tokens, more than the vocab {shape.vocab}")
    config_class = {"llama": LlamaConfig, "qwen2": Qwen2Config}[shape.arch]
    config = config_class(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        intermediate_size=shape.intermediate,
        max_position_embeddings=max(4096, data.max_length),
        tie_word_embeddings=shape.tied,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if bf16 else torch.float32)
    n_params = sum(p.numel() for p in model.parameters())  # shared (tied) tensors once
    model.save_pretrained(model_dir)  # replaces the tiny model's weights and config; the tokenizer stays
    del model

    records = synthetic_conversations(tokenizer, data, seed=SEED)
    lengths = sorted(conversation_tokens(tokenizer, r["messages"]) for r in records)
    if lengths[-1] > data.max_length:
        raise SystemExit(f"a conversation has {lengths[-1]} tokens, over max_length {data.max_length}")
    data_path = folder / "train.jsonl"
    data_path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    stats = {
        "examples": len(records),
        "median": lengths[len(lengths) // 2],
        "mean": round(sum(lengths) / len(lengths), 1),
        "max": lengths[-1],
        "total_tokens": sum(lengths),
        "tokenizer_size": len(tokenizer),
    }
    return model_dir, data_path, stats, n_params, int(tokenizer.pad_token_id)


def synthetic_conversations(tokenizer: Any, data: DataPlan, *, seed: int) -> list[dict[str, Any]]:
    """``data.examples`` conversations (one or two user/assistant turns) whose token lengths are log-normal around
    ``data.median_tokens``, none over ``data.max_length``."""
    rng = random.Random(seed)
    records = []
    cap = data.max_length - 24  # room for the template's scaffolding and BOS/EOS
    for index in range(data.examples):
        target = min(cap, max(24, round(rng.lognormvariate(math.log(data.median_tokens), data.sigma))))
        turns = 1 if target < 80 or rng.random() < 0.5 else 2
        budget = max(8, target - 6 * turns)  # about three tokens of scaffolding per message
        messages = []
        for _ in range(turns):
            share = budget // turns
            user = max(2, share * rng.randint(15, 45) // 100)
            messages.append({"role": "user", "content": _text(tokenizer, rng, user)})
            messages.append({"role": "assistant", "content": _text(tokenizer, rng, max(2, share - user))})
        records.append({"id": f"bench-{index}", "messages": messages})
    return records


def _text(tokenizer: Any, rng: random.Random, n_tokens: int) -> str:
    words = " ".join(rng.choice(_WORDS) for _ in range(n_tokens + 8))
    ids = tokenizer(words, add_special_tokens=False)["input_ids"][:n_tokens]
    return str(tokenizer.decode(ids)).strip()


def conversation_tokens(tokenizer: Any, messages: list[dict[str, str]]) -> int:
    """Tokens of a conversation as the engine counts them (rendered, then BOS ... EOS around it)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) + 2
