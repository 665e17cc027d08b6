"""Causal-LM cross-entropy without the whole batch's logits: the output projection and the loss run over chunks of
tokens, and each chunk's logits are recomputed in the backward pass instead of being kept.

For a 150k-token vocabulary, a batch of 16k tokens has 2.4 G logits (9.8 GB in fp32, as much again for their
gradient); in chunks, one chunk's logits exist at a time. The price is one more forward pass of the output
projection per step (about a third of its cost; the projection is a small share of a step for models over ~1B).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

IGNORE_INDEX = -100

# Logit elements per chunk (fp32: 128 MiB, and as much for their gradient).
CHUNK_LOGITS = 2**25
MIN_CHUNK_TOKENS = 128

# Config attributes that post-process logits (Gemma 2/3 soft-capping, Cohere/Granite scaling): the plain projection
# would give other logits than the model's own forward, so such models keep their own loss.
_LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


def chunk_tokens_for(vocab_size: int) -> int:
    """Tokens per chunk for a vocabulary of ``vocab_size``."""
    return max(MIN_CHUNK_TOKENS, CHUNK_LOGITS // max(1, vocab_size))


def chunked_loss_problem(model: Any) -> str | None:
    """Why the chunked loss cannot stand in for ``model``'s own loss, or None when it can.

    ``model`` is the unwrapped causal LM (not a PeftModel). It must project hidden states with its output embeddings
    and nothing else, and take ``logits_to_keep`` so its forward can skip the full projection.
    """
    import inspect

    config = getattr(model, "config", None)
    for name in _LOGIT_POSTPROCESSING:
        value = getattr(config, name, None)
        if value not in (None, 1, 1.0):
            return f"the model post-processes its logits ({name}={value})"
    if model.get_output_embeddings() is None:
        return "the model has no output embeddings"
    if "logits_to_keep" not in inspect.signature(model.forward).parameters:
        return "the model's forward takes no logits_to_keep"
    return None


def chunked_causal_lm_loss(
    hidden: torch.Tensor,
    head: nn.Module,
    labels: torch.Tensor,
    num_items_in_batch: torch.Tensor | int | None = None,
    chunk_tokens: int | None = None,
) -> torch.Tensor:
    """The mean next-token cross-entropy of ``head(hidden)`` against ``labels`` (shifted by one, ``-100`` ignored).

    ``hidden`` is ``(..., seq, hidden_size)`` and ``labels`` ``(..., seq)``. The sum over targets is divided by
    ``num_items_in_batch`` when given (the Trainer's count over all micro-batches of an accumulated step), else by
    this batch's number of targets — the same as transformers' ``ForCausalLMLoss``.
    """
    import torch
    from torch.utils.checkpoint import checkpoint

    targets = labels[..., 1:].reshape(-1)
    states = hidden[..., :-1, :].reshape(-1, hidden.shape[-1])
    weight = getattr(head, "weight", None)
    vocab_size = int(weight.shape[0]) if weight is not None else 32_768
    step = chunk_tokens or chunk_tokens_for(vocab_size)
    piece = functools.partial(_chunk_loss, head)
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    for start in range(0, targets.numel(), step):
        chunk_loss = checkpoint(piece, states[start : start + step], targets[start : start + step], use_reentrant=False)
        total = total + chunk_loss
    denominator = num_items_in_batch if num_items_in_batch is not None else (targets != IGNORE_INDEX).sum()
    if isinstance(denominator, torch.Tensor):
        denominator = denominator.to(total.device)
    return total / denominator


def _chunk_loss(head: nn.Module, states: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F

    logits = head(states).float()
    return F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")
