"""The SFT benchmark's measuring callback: computed and real tokens from a forward pre-hook, step times from
``on_step_end``, the last losses, peak memory and MFU; the same for every setting."""

from __future__ import annotations

import time
from typing import Any

from bench.sft_plans import LOSS_WINDOW, PEAK_BF16_FLOPS


def meter_class() -> type:
    """The measuring callback (defined here so the parent never imports transformers before it needs to)."""
    import resource

    import torch
    from transformers import TrainerCallback

    class Meter(TrainerCallback):
        """Token counts from a forward pre-hook (device tensors, read once), step times from ``on_step_end``."""

        def __init__(self, spec: dict[str, Any]) -> None:
            self.spec = spec
            self.cuda = spec["device"] == "cuda"
            self.pad_id = int(spec["pad_id"])
            self.step = 0
            self.times: list[float] = []
            self.counts: list[tuple[int, int, torch.Tensor, torch.Tensor]] = []  # step, computed, real, examples
            self.losses: list[float] = []
            self.hooked = False

        def _hook(self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if not module.training:
                return
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is None:
                return
            mask = kwargs.get("attention_mask")
            real_mask = mask.bool() if mask is not None and mask.dim() == 2 else ids != self.pad_id
            positions = kwargs.get("position_ids")
            if positions is not None and positions.shape == ids.shape:
                examples = ((positions == 0) & real_mask).sum()  # packed rows: each example restarts at 0
            else:
                examples = torch.tensor(ids.shape[0], device=ids.device)
            self.counts.append((self.step, ids.numel(), real_mask.sum(), examples))

        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            if model is not None and not self.hooked:
                model.register_forward_pre_hook(self._hook, with_kwargs=True)
                self.hooked = True
            if self.cuda:
                torch.cuda.synchronize()
            self.times.append(time.perf_counter())

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.cuda:
                torch.cuda.synchronize()
            self.times.append(time.perf_counter())
            self.step += 1

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

        def result(self) -> dict[str, Any]:
            warmup, steps = int(self.spec["warmup"]), int(self.spec["steps"])
            if not self.hooked or len(self.times) < warmup + steps + 1:
                raise RuntimeError(f"expected {warmup + steps} steps, timed {len(self.times) - 1}")
            seconds = self.times[warmup + steps] - self.times[warmup]
            window = [c for c in self.counts if warmup <= c[0] < warmup + steps]
            computed = sum(c[1] for c in window)
            real = int(torch.stack([c[2] for c in window]).sum().item())
            examples = int(torch.stack([c[3] for c in window]).sum().item())
            tokens_per_s = real / seconds
            result: dict[str, Any] = {
                "real_tokens_per_s": round(tokens_per_s, 1),
                "real_token_fraction": round(real / computed, 4),
                "s_per_step": round(seconds / steps, 4),
                "final_loss": round(sum(self.losses[-LOSS_WINDOW:]) / len(self.losses[-LOSS_WINDOW:]), 4)
                if self.losses
                else None,
                "real_tokens_per_step": round(real / steps, 1),
                "computed_tokens_per_step": round(computed / steps, 1),
                "examples_per_step": round(examples / steps, 2),
                "timed_steps": steps,
            }
            if self.cuda:
                name = torch.cuda.get_device_name()
                peak = next((flops for key, flops in PEAK_BF16_FLOPS if key in name), None)
                result["peak_mem_bytes"] = int(torch.cuda.max_memory_allocated())
                result["peak_reserved_bytes"] = int(torch.cuda.max_memory_reserved())
                result["device_name"] = name
                result["mfu"] = round(6 * self.spec["n_params"] * tokens_per_s / peak, 4) if peak else None
            else:
                result["peak_mem_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
            return result

    return Meter
