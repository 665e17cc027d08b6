"""Whether a training step fits a GPU without activation (gradient) checkpointing, estimated before training.

Checkpointing trades memory for about a third more compute per step, so it pays only where the activations would
not fit otherwise. Activations per token and layer of a decoder block (stored for the backward pass, 16-bit):
the two norms' inputs and outputs, q/k/v, the attention output, the MLP's gate, up, activation and down input — about
``8·h + 2·kv + 4·i`` values for hidden size ``h``, key/value width ``kv`` and MLP width ``i`` (the attention itself
is a fused kernel, which keeps no score matrix). With checkpointing, each layer keeps only its input (``h``) and one
layer at a time is recomputed. A margin covers the allocator, the CUDA context and the loss.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

ADAM_STATE_BYTES = 8  # two fp32 moments per trainable parameter
ACTIVATION_BYTES = 2  # bf16/fp16 activations
HEADROOM = 0.85  # the share of free memory a step may plan to use


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training step needs, by kind."""

    weights: int
    gradients: int
    optimizer: int
    activations: int
    activations_checkpointed: int

    def total(self, *, checkpointing: bool) -> int:
        states = self.weights + self.gradients + self.optimizer
        return states + (self.activations_checkpointed if checkpointing else self.activations)


def estimate_training_memory(model: Any, tokens_per_micro_batch: int, *, trains_base: bool) -> MemoryEstimate:
    """The estimate for ``model`` and ``tokens_per_micro_batch`` tokens; ``trains_base``: a full finetune (else an
    adapter, whose gradients and optimizer states are negligible beside the base)."""
    weights = gradients = optimizer = 0
    for parameter in model.parameters():
        size = parameter.numel() * parameter.element_size()
        weights += size
        if trains_base and parameter.requires_grad:
            gradients += size
            optimizer += parameter.numel() * ADAM_STATE_BYTES
    config = model.config
    get_text_config = getattr(config, "get_text_config", None)
    text = get_text_config() if callable(get_text_config) else config
    hidden = int(text.hidden_size)
    layers = int(text.num_hidden_layers)
    intermediate = int(getattr(text, "intermediate_size", None) or 4 * hidden)
    heads = int(getattr(text, "num_attention_heads", 1) or 1)
    kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
    kv_width = hidden // heads * kv_heads
    per_token_layer = (8 * hidden + 2 * kv_width + 4 * intermediate) * ACTIVATION_BYTES
    activations = tokens_per_micro_batch * layers * per_token_layer
    checkpointed = tokens_per_micro_batch * (layers * hidden * ACTIVATION_BYTES + per_token_layer)
    return MemoryEstimate(weights, gradients, optimizer, activations, checkpointed)


def needs_checkpointing(estimate: MemoryEstimate, free_bytes: int) -> bool:
    """True when the step would not fit in ``free_bytes`` without checkpointing."""
    return estimate.total(checkpointing=False) > HEADROOM * free_bytes


def choose_checkpointing(model: Any, tokens_per_micro_batch: int, device_index: int, *, trains_base: bool) -> bool:
    """Decide for a CUDA device from its free memory now (the model already on it), logging why."""
    import torch

    free, _total = torch.cuda.mem_get_info(device_index)
    # the weights are already on the device: add them back, since the estimate counts them
    estimate = estimate_training_memory(model, tokens_per_micro_batch, trains_base=trains_base)
    available = free + estimate.weights
    decision = needs_checkpointing(estimate, available)
    logger.info(
        "memory estimate: %.1f GiB without activation checkpointing, %.1f GiB with; %.1f GiB available: "
        "checkpointing %s",
        estimate.total(checkpointing=False) / 2**30,
        estimate.total(checkpointing=True) / 2**30,
        available / 2**30,
        "on" if decision else "off",
    )
    return decision
