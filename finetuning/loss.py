"""Causal-LM cross-entropy without the whole batch's logits: the output projection and the loss run over chunks of
tokens, so one chunk's logits exist at a time.

For a 150k-token vocabulary, a batch of 16k tokens has 2.4 G logits (9.8 GB in fp32, as much again for their
gradient). Where the output projection is a plain linear layer, each chunk's gradients (for the hidden states, the
weight and the bias) are computed in the forward pass, while its logits are at hand, and the backward pass only
scales them: the same matrix products as the unchunked loss, no logits kept. Other heads (an adapter on the head,
say) run each chunk under activation checkpointing: the chunk's logits are recomputed in the backward pass, which
costs one more pass of the projection.
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
    denominator = num_items_in_batch if num_items_in_batch is not None else (targets != IGNORE_INDEX).sum()
    denominator = torch.as_tensor(denominator, device=hidden.device, dtype=torch.float32)
    if type(head) is torch.nn.Linear:
        # The projection runs in the dtype the model's own head would: autocast's under mixed precision (which
        # also hands us float32 states beside bfloat16 weights: accelerate returns the forward's outputs in float32),
        # else the weight's. The casts are autograd ops, so the gradients reach the parameters in their own dtype.
        dtype = projection_dtype(hidden.device.type, head.weight.dtype)
        bias = head.bias.to(dtype) if head.bias is not None else None
        with torch.autocast(hidden.device.type, enabled=False):
            loss: torch.Tensor = _FusedLinearCrossEntropy.apply(
                states.to(dtype), head.weight.to(dtype), bias, targets, denominator, step
            )
        return loss
    piece = functools.partial(_chunk_loss, head)
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    for start in range(0, targets.numel(), step):
        chunk_loss = checkpoint(piece, states[start : start + step], targets[start : start + step], use_reentrant=False)
        total = total + chunk_loss
    return total / denominator


def projection_dtype(device_type: str, weight_dtype: torch.dtype) -> torch.dtype:
    """The dtype a linear layer computes in here: autocast's lower precision where autocast is on, else the
    weight's own."""
    import torch

    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return weight_dtype


def _chunk_loss(head: nn.Module, states: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F

    logits = head(states).float()
    return F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")


def _fused_class() -> type:
    import torch

    class FusedLinearCrossEntropy(torch.autograd.Function):
        """sum(cross_entropy(states @ weight.T + bias, targets)) / denominator, chunk by chunk, with the gradients
        computed in the forward pass (the loss is a scalar at the end of the graph: only its incoming gradient, a
        scale, is unknown there)."""

        @staticmethod
        def forward(
            ctx: Any,
            states: torch.Tensor,
            weight: torch.Tensor,
            bias: torch.Tensor | None,
            targets: torch.Tensor,
            denominator: torch.Tensor,
            step: int,
        ) -> torch.Tensor:
            needs = ctx.needs_input_grad
            grad_states = torch.zeros_like(states) if needs[0] else None
            grad_weight = torch.zeros_like(weight, dtype=torch.float32) if needs[1] else None
            grad_bias = torch.zeros_like(bias, dtype=torch.float32) if bias is not None and needs[2] else None
            total = torch.zeros((), dtype=torch.float32, device=states.device)
            for start in range(0, targets.numel(), step):
                chunk_states, chunk_targets = states[start : start + step], targets[start : start + step]
                logits = torch.nn.functional.linear(chunk_states, weight, bias).float()
                valid = chunk_targets != IGNORE_INDEX
                safe_targets = torch.where(valid, chunk_targets, 0)
                log_norm = torch.logsumexp(logits, dim=-1)
                target_logits = logits.gather(1, safe_targets.unsqueeze(1)).squeeze(1)
                total += ((log_norm - target_logits) * valid).sum()
                # d(loss)/d(logits) = (softmax - one_hot(target)) / denominator, zero on ignored positions
                grad_logits = torch.softmax(logits, dim=-1)
                grad_logits.scatter_add_(1, safe_targets.unsqueeze(1), -torch.ones_like(log_norm).unsqueeze(1))
                grad_logits *= (valid / denominator).unsqueeze(1)
                if grad_states is not None:
                    grad_states[start : start + step] = (grad_logits.to(weight.dtype) @ weight).to(states.dtype)
                if grad_weight is not None:
                    grad_weight += grad_logits.T @ chunk_states.float()
                if grad_bias is not None:
                    grad_bias += grad_logits.sum(0)
            ctx.save_for_backward(*(g for g in (grad_states, grad_weight, grad_bias) if g is not None))
            ctx.present = (grad_states is not None, grad_weight is not None, grad_bias is not None)
            ctx.dtypes = (weight.dtype, bias.dtype if bias is not None else None)
            return total / denominator

        @staticmethod
        def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
            saved = iter(ctx.saved_tensors)
            grads = [next(saved) * grad_output if present else None for present in ctx.present]
            if grads[1] is not None:
                grads[1] = grads[1].to(ctx.dtypes[0])
            if grads[2] is not None:
                grads[2] = grads[2].to(ctx.dtypes[1])
            return grads[0], grads[1], grads[2], None, None, None

    return FusedLinearCrossEntropy


class _Lazy:
    """The autograd function, built on first use so importing this module does not import torch."""

    _cls: Any = None

    @classmethod
    def apply(cls, *args: Any) -> Any:
        if cls._cls is None:
            cls._cls = _fused_class()
        return cls._cls.apply(*args)


_FusedLinearCrossEntropy = _Lazy
