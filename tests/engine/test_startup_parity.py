"""A config that cannot start is refused when it is validated: each start-up check of transformers' TrainingArguments
and Trainer and of TRL's DPOConfig that needs no model or data is held against the library's own verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from finetuning.config import ConfigError, DPOConfig, SFTConfig

ORIGINAL_CONFIGS = Path(__file__).parents[1] / "assets" / "original-configs"


def sft(training_args: dict[str, Any], validation: str = "AUTO_SPLIT") -> dict[str, Any]:
    return {
        "data_conf": {
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": "train.jsonl"}]},
            "validation_data": {"type": validation},
        },
        "training_args": training_args,
        "batchsize_conf": {"total_train_batch_size": 8, "max_per_device_train_batch_size": 4},
        "peft_conf": {"peft_type": "NO_PEFT"},
        "run_conf": {},
        "sft_args": {},
    }


def ours(cls: Any, data: dict[str, Any]) -> set[str]:
    """The fields our validation refuses (empty: accepted)."""
    try:
        cls.validate_config(data)
    except ConfigError as exc:
        return {issue.loc for issue in exc.issues}
    return set()


def theirs(arguments_class: Any, kwargs: dict[str, Any], tmp_path: Path) -> bool:
    """Whether the library refuses the same arguments when a run starts."""
    try:
        arguments_class(output_dir=str(tmp_path), use_cpu=True, report_to=[], **kwargs)
    except ValueError:
        return True
    return False


TRAINING_ARGS_CASES: list[tuple[dict[str, Any], str | None]] = [
    ({}, None),
    ({"logging_strategy": "steps", "logging_steps": 0}, "training_args.logging_steps"),
    ({"logging_steps": 2.5}, "training_args.logging_steps"),
    ({"eval_strategy": "steps", "eval_steps": 2.5}, "training_args.eval_steps"),
    ({"save_strategy": "steps", "save_steps": 10.5}, "training_args.save_steps"),
    ({"logging_steps": 0.5, "eval_strategy": "steps", "eval_steps": 0.25}, None),
    ({"eval_strategy": "steps", "logging_strategy": "no", "logging_steps": 0}, "training_args.eval_steps"),
    ({"load_best_model_at_end": True, "eval_strategy": "steps", "save_strategy": "epoch"}, "x"),
    ({"load_best_model_at_end": True, "eval_strategy": "steps", "eval_steps": 10, "save_steps": 15}, "x"),
    ({"load_best_model_at_end": True, "eval_strategy": "steps", "eval_steps": 10, "save_steps": 20}, None),
    ({"load_best_model_at_end": True, "eval_strategy": "steps", "eval_steps": 0.1, "save_steps": 0.2}, None),
    ({"load_best_model_at_end": True, "eval_strategy": "steps", "eval_steps": 0.1, "save_steps": 0.25}, "x"),
    ({"load_best_model_at_end": True, "eval_strategy": "steps", "eval_steps": 0.1, "save_steps": 5}, "x"),
    ({"load_best_model_at_end": True, "eval_strategy": "steps", "save_strategy": "best"}, None),
    ({"fp16": True, "bf16": True}, "training_args.fp16"),
    ({"fp16_full_eval": True, "bf16_full_eval": True}, "training_args.fp16_full_eval"),
    ({"lr_scheduler_type": "reduce_lr_on_plateau"}, "training_args.lr_scheduler_type"),
    ({"lr_scheduler_type": "reduce_lr_on_plateau", "eval_strategy": "epoch"}, None),
    ({"lr_scheduler_type": "greedy"}, "training_args.lr_scheduler_type"),
    ({"warmup_steps": -1}, "training_args.warmup_steps"),
    ({"dataloader_prefetch_factor": 2}, "training_args.dataloader_prefetch_factor"),
    ({"dataloader_prefetch_factor": 2, "dataloader_num_workers": 1}, None),
    ({"torch_empty_cache_steps": 0}, "training_args.torch_empty_cache_steps"),
]


@pytest.mark.parametrize(("kwargs", "refused_at"), TRAINING_ARGS_CASES)
def test_training_arguments_checks_agree_with_transformers(
    kwargs: dict[str, Any], refused_at: str | None, tmp_path: Path
) -> None:
    from transformers import TrainingArguments

    found = ours(SFTConfig, sft(kwargs))
    assert bool(found) == theirs(TrainingArguments, kwargs, tmp_path)
    assert bool(found) == (refused_at is not None)
    if refused_at and refused_at != "x":
        assert refused_at in found


@pytest.mark.parametrize(
    "path",
    sorted(p for p in ORIGINAL_CONFIGS.glob("*.yaml") if "generate" not in p.name),
    ids=lambda p: p.stem,
)
def test_the_original_recipes_pass_both(path: Path, tmp_path: Path) -> None:
    """Each real recipe, read in today's spelling, is accepted by us and by the library it runs on."""
    from transformers import TrainingArguments
    from trl import DPOConfig as TRLDPOConfig

    is_dpo = "dpo" in path.name and "sft_config" not in path.name
    config = (DPOConfig if is_dpo else SFTConfig).from_yaml_file(path)
    kwargs = config.training_args.model_dump(exclude_unset=True)
    for owned in ("output_dir", "use_cpu", "report_to", "max_prompt_length", "max_completion_length"):
        kwargs.pop(owned, None)
    kwargs["bf16"] = False  # no bf16 GPU here: transformers refuses bf16 without use_cpu, which we pass
    assert not theirs(TRLDPOConfig if is_dpo else TrainingArguments, kwargs, tmp_path)


def test_evaluation_without_validation_data_is_refused_as_the_trainer_would(tiny_model_dir: Path) -> None:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    found = ours(SFTConfig, sft({"eval_strategy": "steps", "eval_steps": 5}, validation="NONE"))
    assert found == {"training_args.eval_strategy"}
    args = TrainingArguments(output_dir="/tmp/unused", use_cpu=True, report_to=[], eval_strategy="steps", eval_steps=5)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with pytest.raises(ValueError, match="eval_dataset"):
        Trainer(model=model, args=args, train_dataset=Dataset.from_dict({"input_ids": [[1, 2]]}))
    assert ours(SFTConfig, sft({"eval_strategy": "steps", "eval_steps": 5})) == set()  # AUTO_SPLIT gives eval data


def dpo(training_args: dict[str, Any], peft: dict[str, Any] | None = None) -> dict[str, Any]:
    data = sft(training_args, validation="NONE")
    del data["sft_args"]
    if peft is not None:
        data["peft_conf"] = peft
    return data


def test_dpo_loss_weights_agree_with_trl(tmp_path: Path) -> None:
    from trl import DPOConfig as TRLDPOConfig

    bad = {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0]}
    assert ours(DPOConfig, dpo(bad)) == {"training_args.loss_weights"}
    assert theirs(TRLDPOConfig, bad, tmp_path)
    good = {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 0.5]}
    assert ours(DPOConfig, dpo(good)) == set()
    assert not theirs(TRLDPOConfig, good, tmp_path)


LORA_ON_HEAD = {"peft_type": "LORA", "peft_kwargs": {"r": 4, "target_modules": ["q_proj", "lm_head"]}}


@pytest.mark.parametrize(
    ("training_args", "peft", "refused_at"),
    [
        ({"f_divergence_type": "js_divergence", "loss_type": "bco_pair"}, None, "training_args.f_divergence_type"),
        ({"f_divergence_type": "js_divergence", "loss_type": "ipo"}, None, None),
        ({"loss_type": "exo_pair"}, None, "training_args.label_smoothing"),
        ({"loss_type": "exo_pair", "label_smoothing": 1e-3}, None, None),
        ({"loss_type": "aot", "use_weighting": True}, None, "training_args.use_weighting"),
        ({}, LORA_ON_HEAD, "peft_conf.peft_kwargs.target_modules"),
        ({"loss_type": "kto"}, LORA_ON_HEAD, None),  # the KTO trainer has no such limit
        ({"sync_ref_model": True}, {"peft_type": "LORA", "peft_kwargs": {"r": 4}}, "training_args.sync_ref_model"),
        ({"sync_ref_model": True, "precompute_ref_log_probs": True}, None, "training_args.precompute_ref_log_probs"),
    ],
)
def test_dpo_trainer_checks(training_args: dict[str, Any], peft: dict[str, Any] | None, refused_at: str | None) -> None:
    """DPOTrainer.__init__ refuses these after loading the model (trl/trainer/dpo_trainer.py); we before queueing."""
    found = ours(DPOConfig, dpo(training_args, peft))
    assert found == ({refused_at} if refused_at else set())
