"""Steps, model, memory and time: what the run would resolve and cost, from its config and its data's statistics."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from finetuning.batchsize import BatchPlan
from finetuning.config.model import NoPeftConf
from finetuning.memory import HEADROOM, estimate_training_memory
from finetuning.plan.options import TrainingConfig
from finetuning.throughput_table import ACCELERATORS, ASSUMED_MFU, CPU_MEASURED, Accelerator, accelerator

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


logger = logging.getLogger(__name__)


def count_steps(args_conf: Any, rows: int, batch: BatchPlan) -> dict[str, Any]:
    """Optimizer steps as the Trainer counts them: batches per process per epoch (a distributed sampler gives each
    process ceil(rows / processes) rows), grouped by the accumulation (a partial group is a step)."""
    per_process = math.ceil(rows / batch.num_processes)
    per_device = batch.per_device_train_batch_size
    drop_last = bool(getattr(args_conf, "dataloader_drop_last", False))
    batches = per_process // per_device if drop_last else math.ceil(per_process / per_device)
    accumulation = batch.gradient_accumulation_steps
    per_epoch = max(batches // accumulation + int(batches % accumulation > 0), 1)
    return step_totals(args_conf, rows, per_epoch)


def step_totals(args_conf: Any, rows: int, per_epoch: int) -> dict[str, Any]:
    """The run's total steps from its steps per epoch: ``max_steps`` when set, else ``num_train_epochs`` epochs."""
    max_steps = int(getattr(args_conf, "max_steps", -1) or -1)
    epochs = float(getattr(args_conf, "num_train_epochs", 1.0))
    total = max_steps if max_steps > 0 else math.ceil(epochs * per_epoch)
    return {
        "rows_per_epoch": rows,
        "steps_per_epoch": per_epoch,
        "total": total,
        "epochs": round(total / per_epoch, 3) if per_epoch else 0.0,
        "limited_by": "max_steps" if max_steps > 0 else "num_train_epochs",
    }


def mean_tokens_per_step(tokens_per_epoch: int, steps: dict[str, Any]) -> float:
    return tokens_per_epoch / max(1, steps["steps_per_epoch"])


def length_statistics(lengths: np.ndarray, factor: float) -> dict[str, Any]:
    if not len(lengths):
        return {"rows": 0, "tokens": 0, "mean": 0.0, "p50": 0, "p95": 0, "max": 0}
    return {
        "rows": round(len(lengths) * factor),
        "tokens": round(int(lengths.sum()) * factor),
        "mean": round(float(lengths.mean()), 1),
        "p50": int(np.percentile(lengths, 50, method="lower")),
        "p95": int(np.percentile(lengths, 95, method="lower")),
        "max": int(lengths.max()),
    }


def meta_model(config: TrainingConfig, tokenizer: PreTrainedTokenizerBase) -> Any:
    """The run's model built on the ``meta`` device from its config (no weights read), in the dtype it loads in,
    its embeddings grown for the template's tokens as the run grows them."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from finetuning import models

    model_args = config.run_conf.model_args
    model_config = AutoConfig.from_pretrained(
        config.run_conf.model,
        trust_remote_code=model_args.trust_remote_code,
        revision=model_args.revision,
        subfolder=model_args.subfolder or "",
    )
    dtype: Any = model_args.dtype
    if dtype in (None, "auto"):
        dtype = getattr(model_config, "dtype", None) or getattr(model_config, "torch_dtype", None) or torch.float32
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(
            model_config, dtype=dtype, trust_remote_code=model_args.trust_remote_code
        )
    try:
        models.grow_embeddings(model, tokenizer)
    except Exception as exc:  # a meta model that cannot be resized: the base vocabulary is counted
        logger.debug("plan: embeddings not grown on the meta model: %s", exc)
    return model


def model_section(model: Any, config: TrainingConfig) -> dict[str, Any]:
    text = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    parameters = sum(p.numel() for p in model.parameters())
    return {
        "parameters": parameters,
        "layers": int(text.num_hidden_layers),
        "hidden_size": int(text.hidden_size),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "training": "full" if isinstance(config.peft_conf, NoPeftConf) else config.peft_conf.peft_type,
        "quantized": config.quant_conf.quantization_type != "no-quantization",
    }


def memory_section(
    model: Any, config: TrainingConfig, tokens_per_micro_batch: int, gpu: str | None, *, reference: bool = False
) -> dict[str, Any]:
    """The engine's own estimate (:func:`finetuning.memory.estimate_training_memory`) per device, and a verdict.
    ``reference``: the method keeps a reference model (DPO, KTO, GRPO with a KL term), a second copy of the weights
    when the base itself trains (an adapter's reference is the base with the adapter off: no copy)."""
    full = isinstance(config.peft_conf, NoPeftConf)
    estimate = estimate_training_memory(model, tokens_per_micro_batch, trains_base=full)
    args = config.training_args
    checkpointing_set = {"gradient_checkpointing", "activation_checkpointing"} & args.model_fields_set
    forced = bool(getattr(args, "gradient_checkpointing", False)) if checkpointing_set else None
    reference_bytes = estimate.weights if reference and full else 0
    without = estimate.total(checkpointing=False) + reference_bytes
    with_ = estimate.total(checkpointing=True) + reference_bytes
    report: dict[str, Any] = {
        "per_device_bytes": {
            "weights": estimate.weights,
            "reference_model": reference_bytes,
            "gradients": estimate.gradients,
            "optimizer": estimate.optimizer,
            "activations": estimate.activations,
            "activations_checkpointed": estimate.activations_checkpointed,
            "total": without,
            "total_checkpointed": with_,
        },
        "tokens_per_micro_batch": tokens_per_micro_batch,
        "headroom": HEADROOM,
        "notes": [
            "weights in the dtype the model loads in; gradients and Adam's two fp32 moments only for full finetuning "
            "(an adapter's are negligible); 16-bit activations of a micro-batch of full rows; the allocator, CUDA "
            "context and logits are covered by the headroom (finetuning/memory.py)"
        ],
    }
    if config.training_args.fsdp or config.training_args.deepspeed is not None:
        report["notes"].append("FSDP/DeepSpeed shard weights, gradients and optimizer state: this is an upper bound")
    cards = [accelerator(gpu)] if gpu else list(ACCELERATORS.values())
    report["gpus"] = [_verdict(card, without, with_, forced) for card in cards]
    report["declared_gpu"] = gpu
    return report


def _verdict(card: Accelerator, without: int, with_: int, forced: bool | None) -> dict[str, Any]:
    budget = HEADROOM * card.memory_bytes
    if forced is False:
        fits = without <= budget
        verdict = "fits" if fits else "does not fit (gradient_checkpointing: false)"
    elif without <= budget and not forced:
        verdict = "fits"
    elif with_ <= budget:
        verdict = "fits with activation checkpointing" + (" (set)" if forced else " (the engine turns it on)")
    else:
        verdict = "does not fit: lower max_per_device_train_batch_size or max_seq_length, use an adapter, or shard"
    return {"gpu": card.name, "memory_bytes": card.memory_bytes, "verdict": verdict}


def flops_per_token(parameters: int, layers: int, hidden: int, mean_tokens: float, *, full: bool) -> float:
    """Training FLOPs per token: 6 x parameters (2 forward, 4 backward; an adapter skips the weight gradients:
    4 x parameters) plus causal attention (6 x layers x hidden x the mean example length)."""
    dense = (6 if full else 4) * parameters
    return dense + 6 * layers * hidden * mean_tokens


def time_section(
    model: Any,
    config: TrainingConfig,
    steps: dict[str, Any],
    tokens_per_step: float,
    mean_tokens: float,
    batch: BatchPlan,
    gpu: str | None,
    *,
    passes: int,
    reference_forward: bool = False,
) -> dict[str, Any]:
    section = model_section(model, config)
    full = section["training"] == "full"
    per_token = flops_per_token(
        section["parameters"], section["layers"], section["hidden_size"], mean_tokens, full=full
    )
    if reference_forward:
        per_token += 2 * section["parameters"]  # the reference model's forward pass
    tokens = tokens_per_step * steps["total"]
    flops = per_token * tokens * passes
    measured = CPU_MEASURED
    cpu_rate = measured.real_tokens_per_s * flops_per_token(
        measured.parameters, measured.layers, measured.hidden, measured.mean_tokens, full=True
    )
    cpu_s = flops / cpu_rate
    out: dict[str, Any] = {
        "tokens": round(tokens),
        "flops": flops,
        "flops_per_token": per_token,
        "cpu": {
            "basis": "measured",
            "seconds": round(cpu_s, 3),
            "source": measured.source,
            "achieved_flops_per_s": round(cpu_rate),
            "note": "one process on the bench machine's CPU; scaled from the measured model by FLOPs per token",
        },
    }
    cards = [accelerator(gpu)] if gpu else list(ACCELERATORS.values())
    estimates = []
    for card in cards:
        seconds = flops / (ASSUMED_MFU * card.peak_bf16_flops * batch.num_processes)
        estimates.append(
            {
                "gpu": card.name,
                "basis": "assumed",
                "mfu": ASSUMED_MFU,
                "seconds": round(seconds, 3),
                "gpu_hours": round(seconds * batch.num_processes / 3600, 3),
                "source": card.source,
            }
        )
    out["gpus"] = estimates
    out["note"] = (
        "GPU times are NOT measured: model FLOPs / (assumed MFU x the card's dense bf16 peak x processes); run "
        "bench/sft_throughput.py --device cuda on the card to measure. Activation checkpointing adds about a third."
    )
    return out
