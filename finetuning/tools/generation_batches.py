"""Batched generation: prompts generated ``batch_size`` at a time with left padding, each answer trimmed as if its
prompt had been generated alone."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from finetuning.errors import FinetuningError

if TYPE_CHECKING:
    from transformers import GenerationConfig, PreTrainedTokenizerBase


def generate_batches(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Sequence[int]],
    generation_config: GenerationConfig,
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
) -> list[list[int]]:
    """The new token ids for each prompt, in order, generated ``batch_size`` prompts at a time with left padding.

    Each answer ends at its first EOS (kept) and carries no padding, as if its prompt had been generated alone.
    ``on_batch(done_batches)`` is called after every batch.
    """
    import torch

    pad_id = generation_config.pad_token_id
    if pad_id is None:
        raise FinetuningError(
            "no pad token for batching: the tokenizer has neither a pad nor an EOS token; set pad_token_id",
            "invalid_config",
            "hf_gen_params.pad_token_id",
        )
    eos = generation_config.eos_token_id
    if generation_config.max_new_tokens is not None:
        # The prompts already fit max_length - max_new_tokens, so max_new_tokens alone bounds the length; with both
        # set, transformers warns "Both `max_new_tokens` and `max_length` seem to have been set" on every call.
        generation_config = copy.deepcopy(generation_config)
        generation_config.max_length = None
    eos_ids = set() if eos is None else ({int(eos)} if isinstance(eos, int) else {int(i) for i in eos})
    extra = {"tokenizer": tokenizer} if generation_config.stop_strings else {}
    device = model.device
    # Longest first: similar lengths share a batch (less padding), and running out of memory shows at once.
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    answers: list[list[int]] = [[] for _ in prompts]
    for done, start in enumerate(range(0, len(order), batch_size), start=1):
        batch = order[start : start + batch_size]
        width = max(len(prompts[i]) for i in batch)
        input_ids = torch.tensor([[pad_id] * (width - len(prompts[i])) + list(prompts[i]) for i in batch])
        attention_mask = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in batch])
        with torch.inference_mode():
            output = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                generation_config=generation_config,
                **extra,
            )
        sequences = output if isinstance(output, torch.Tensor) else output.sequences
        for row, index in enumerate(batch):
            answers[index] = _trim(sequences[row, width:].tolist(), eos_ids, int(pad_id))
        if on_batch is not None:
            on_batch(done)
    return answers


def _trim(new_ids: list[int], eos_ids: set[int], pad_id: int) -> list[int]:
    """Cut after the first EOS; drop the padding ``generate`` adds to rows that finished before the others."""
    for position, token in enumerate(new_ids):
        if token in eos_ids:
            return new_ids[: position + 1]
    while new_ids and new_ids[-1] == pad_id:
        new_ids = new_ids[:-1]
    return new_ids
