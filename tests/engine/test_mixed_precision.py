"""Mixed precision as users set it: bf16/fp16 weights, bf16/fp16 training, LoRA and full finetuning, with packing
and the chunked loss (the defaults), on the CPU.

The chunked loss is held against the model's own loss on the same batch, through the model as accelerate prepares
it for training (its forward under autocast, its outputs handed back in float32): that is where a bf16 model gave
the fused projection float32 states and failed at the first step."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from finetuning.collators import CausalLMCollator
from tests.engine.sft_helpers import run_cli, sft_config

pytestmark = pytest.mark.slow


def _batch(tokenizer: Any) -> dict[str, torch.Tensor]:
    texts = ["User: what is two plus two?\nAssistant: four", "User: name a colour\nAssistant: the sky is blue today"]
    return CausalLMCollator(tokenizer)([{"input_ids": tokenizer(t)["input_ids"]} for t in texts])


def _trainer(model_dir: Path, tmp_path: Path, *, dtype: torch.dtype, amp: str | None, lora: bool, chunked: bool) -> Any:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, TrainingArguments

    from finetuning.trainer import EngineTrainer

    torch.manual_seed(0)
    model: Any = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation="sdpa")
    if lora:
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    args = TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to=[], bf16=amp == "bf16", fp16=amp == "fp16"
    )
    return EngineTrainer(model=model, args=args, chunked_loss=chunked)


def _loss_and_grads(trainer: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    prepared = trainer.accelerator.prepare_model(trainer.model)  # as training wraps it: autocast, float32 outputs
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    loss = trainer.compute_loss(prepared, dict(batch))
    return loss.detach().float(), [g.float() for g in torch.autograd.grad(loss, params)]


@pytest.mark.parametrize(
    ("dtype", "amp", "lora", "tolerance"),
    [
        (torch.float32, None, False, 1e-5),  # float32 throughout
        (torch.float32, "bf16", False, 2e-2),  # float32 weights, bf16 autocast
        (torch.bfloat16, "bf16", False, 2e-2),  # bf16 weights, as 36 of the 41 recipes load them
        (torch.bfloat16, "bf16", True, 2e-2),  # float32 adapters on bf16 weights
        (torch.bfloat16, None, True, 2e-2),
    ],
    ids=["fp32", "fp32-bf16-autocast", "bf16", "bf16-lora", "bf16-lora-no-autocast"],
)
def test_chunked_loss_equals_the_plain_loss_and_gradients(
    tiny_model_dir: Path,
    tiny_model_dir_with_pad: Path,
    tmp_path: Path,
    dtype: torch.dtype,
    amp: str | None,
    lora: bool,
    tolerance: float,
) -> None:
    from transformers import AutoTokenizer

    batch = _batch(AutoTokenizer.from_pretrained(tiny_model_dir_with_pad))
    chunked_trainer = _trainer(tiny_model_dir, tmp_path / "a", dtype=dtype, amp=amp, lora=lora, chunked=True)
    assert chunked_trainer.chunked_loss
    plain_trainer = _trainer(tiny_model_dir, tmp_path / "b", dtype=dtype, amp=amp, lora=lora, chunked=False)
    chunked_loss, chunked_grads = _loss_and_grads(chunked_trainer, batch)
    plain_loss, plain_grads = _loss_and_grads(plain_trainer, batch)
    assert math.isfinite(chunked_loss.item())
    assert chunked_loss.item() == pytest.approx(plain_loss.item(), rel=tolerance)
    assert len(chunked_grads) == len(plain_grads) > 0
    for got, expected in zip(chunked_grads, plain_grads, strict=True):
        # relative error of the whole gradient: bf16 rounds each element, the direction and size must hold
        scale = expected.norm().clamp_min(1e-12)
        assert ((got - expected).norm() / scale).item() < max(tolerance * 5, 1e-4)


def _data(tmp_path: Path) -> Path:
    path = tmp_path / "chat.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"what is {i} plus {i}?"},
                {"role": "assistant", "content": f"it is {2 * i}, the cat sees a book"},
            ]
        }
        for i in range(24)
    ]
    path.write_text("\n".join(json.dumps(row) for row in rows))
    return path


@pytest.mark.parametrize("weights", ["bfloat16", "float16"])
@pytest.mark.parametrize("training", ["bf16", "fp16"])
@pytest.mark.parametrize("peft", ["LORA", "NO_PEFT"])
def test_half_precision_recipes_train(
    tiny_model_dir: Path, tmp_path: Path, weights: str, training: str, peft: str
) -> None:
    """Every pairing of weight dtype and mixed-precision mode trains to finite, falling losses (float16 weights
    that train are kept in float32: in float16, Adam's updates underflow and the loss turns to NaN)."""
    config = sft_config(
        tiny_model_dir,
        _data(tmp_path),
        tmp_path / "out",
        training_args={"max_steps": 6, "bf16": training == "bf16", "fp16": training == "fp16", "learning_rate": 2e-3},
        run_conf={"model_args": {"torch_dtype": weights, "attn_implementation": "sdpa"}},
        peft_conf={"peft_type": peft},
        sft_args={"max_seq_length": 64},
    )
    if peft == "NO_PEFT":
        config["peft_conf"] = {"peft_type": "NO_PEFT"}
    code, events = run_cli(tmp_path / "run", config)
    assert code == 0
    losses = [e["loss"] for e in events if e["type"] == "metrics" and e.get("loss") is not None]
    assert len(losses) == 6
    assert all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < losses[0]
