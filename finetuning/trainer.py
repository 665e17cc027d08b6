"""The SFT trainer: transformers' Trainer with the chunked loss and token counting that never waits for the device.

Imports transformers at module level: import it only where training happens.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from transformers import Trainer

from finetuning.collators import REAL_TOKENS
from finetuning.loss import chunked_causal_lm_loss, chunked_loss_problem
from finetuning.models import causal_lm_of

logger = logging.getLogger(__name__)


class EngineTrainer(Trainer):
    """``chunked_loss``: compute the loss with :func:`finetuning.loss.chunked_causal_lm_loss` where it can stand in
    for the model's own (the reason is logged where it cannot).

    Batches may carry :data:`finetuning.collators.REAL_TOKENS` (their real-token count, a Python int): it is summed
    on the host and added to ``state.num_input_tokens_seen`` when the Trainer logs, instead of counting non-padding
    tokens on the device and reading the count back after every step.
    """

    def __init__(self, *args: Any, chunked_loss: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending_tokens = 0
        self._host_counts = False  # set by the first batch with a real-token count (every process sees the same kind)
        self.chunked_loss = chunked_loss and self._chunked_loss_usable()
        self._no_logits: torch.Tensor | None = None

    def _chunked_loss_usable(self) -> bool:
        reason = None
        if self.args.use_liger_kernel:
            reason = "Liger kernels fuse the loss"
        elif self.is_fsdp_enabled or self.is_deepspeed_enabled:
            reason = "the output projection's weights are sharded (FSDP/DeepSpeed)"
        elif not self.model_accepts_loss_kwargs:
            reason = "the model takes no loss arguments"
        else:
            reason = chunked_loss_problem(causal_lm_of(self.model))
        if reason:
            logger.info("chunked loss off: %s", reason)
            return False
        return True

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        inputs = {key: value for key, value in inputs.items() if key != REAL_TOKENS}
        if not self.chunked_loss or return_outputs or "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")
        if self._no_logits is None:
            self._no_logits = torch.empty(0, dtype=torch.long, device=labels.device)
        # the forward stops before the output projection (it keeps no position's logits); the final hidden states
        # come back as the last entry of hidden_states
        outputs = model(**inputs, output_hidden_states=True, logits_to_keep=self._no_logits)
        head = causal_lm_of(self.accelerator.unwrap_model(model)).get_output_embeddings()
        # under mixed precision the head computes as it would inside the model's forward (accelerate's autocast
        # wraps only that forward, and hands its outputs back in float32)
        with self.accelerator.autocast():
            loss = chunked_causal_lm_loss(outputs.hidden_states[-1], head, labels, num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            # as Trainer.compute_loss: the count is over all processes, and DDP averages the gradients
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        return loss

    def _track_num_input_tokens(self, inputs: dict[str, Any]) -> None:
        real = inputs.get(REAL_TOKENS)
        if real is None:
            super()._track_num_input_tokens(inputs)
        elif self.args.include_num_input_tokens_seen not in ("no", False):
            self._host_counts = True
            self._pending_tokens += int(real)

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if self._host_counts:  # on every process alike: the gather is collective
            pending = torch.tensor(self._pending_tokens, device=self.args.device, dtype=torch.int64)
            self.state.num_input_tokens_seen += int(self.accelerator.gather(pending).sum().item())
            self._pending_tokens = 0
        super().log(logs, *args, **kwargs)
