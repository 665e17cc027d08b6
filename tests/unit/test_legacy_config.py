"""Configs of the original engine: every field its libraries had is accepted today (translated, with one note naming
today's spelling) or refused with the reason; the users' real configs load unchanged."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from finetuning.config import ConfigError, DPOConfig, GenerateConfig, SFTConfig
from finetuning.config.hf_dpo_args import HFDPOArguments
from finetuning.config.hf_training_args import HFTrainingArguments
from finetuning.config.legacy import DPO_ARGS, MODEL_ARGS, TRAINING_ARGS
from finetuning.config.training import ENGINE_OWNED_KEYS, RETIRED_DPO_KEYS, RETIRED_TRAINING_KEYS

ASSETS = Path(__file__).parents[1] / "assets"
ORIGINAL_CONFIGS = sorted((ASSETS / "original-configs").glob("*.yaml"))
LEGACY_FIELDS: dict[str, dict[str, dict[str, Any]]] = json.loads((ASSETS / "legacy-fields.json").read_text())


def config_class(path: Path) -> Any:
    data = yaml.safe_load(path.read_text())
    if "model_conf" in data:
        return GenerateConfig
    return DPOConfig if data.get("method") == "dpo" or "dpo_config" in path.name else SFTConfig


def sft(training_args: dict[str, Any], **sections: Any) -> dict[str, Any]:
    return {
        "data_conf": {
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": "train.jsonl"}]},
            "validation_data": {"type": "NONE"},
        },
        "training_args": training_args,
        "batchsize_conf": {"total_train_batch_size": 8, "max_per_device_train_batch_size": 4},
        "peft_conf": {"peft_type": "NO_PEFT"},
        "run_conf": {},
        "sft_args": {},
        **sections,
    }


def dpo(training_args: dict[str, Any], **sections: Any) -> dict[str, Any]:
    data = sft(training_args, **sections)
    del data["sft_args"]
    return data


def issues(cls: Any, data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        cls.validate_config(data)
    return {issue.loc: issue.message for issue in caught.value.issues}


# -- the users' configs ------------------------------------------------------------------------------------------------


def test_the_sample_of_original_configs_is_here() -> None:
    assert len(ORIGINAL_CONFIGS) == 13


@pytest.mark.parametrize("path", ORIGINAL_CONFIGS, ids=lambda p: p.stem)
def test_every_original_config_loads_unchanged(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        config = config_class(path).from_yaml_file(path)
    # each translated field is one warning naming today's spelling, and the same note is on the config
    warned = [r.getMessage() for r in caplog.records if r.name == "finetuning.config.base"]
    assert len(warned) == len(config.upgrades)
    for note, message in zip(config.upgrades, warned, strict=True):
        assert note.path in message
        if note.replacement:
            assert note.replacement in message


def test_the_recipes_keep_their_meaning() -> None:
    lora = SFTConfig.from_yaml_file(ASSETS / "original-configs" / "aw-tutorial-01-finetune-lora.yaml")
    assert lora.training_args.warmup_steps == 0.01  # warmup_ratio: 0.01, a fraction of the steps
    assert "warmup_ratio" not in lora.model_dump()["training_args"]
    assert lora.run_conf.model_args.dtype == "bfloat16"  # torch_dtype
    assert lora.training_args.bf16 is True
    assert {u.path for u in lora.upgrades} == {"training_args.warmup_ratio", "run_conf.model_args.torch_dtype"}
    original = DPOConfig.from_yaml_file(ASSETS / "original-configs" / "orig-test_configs-test_dpo_config-yamlstr.yaml")
    assert original.training_args.max_prompt_length == 123  # applied by the engine, as TRL 0.13 did
    assert [u.path for u in original.upgrades] == ["training_args.overwrite_output_dir"]
    assert original.upgrades[0].replacement is None


# -- the whole list of the old libraries' fields ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "schema", "retired"),
    [
        ("transformers-4.57.3 TrainingArguments", HFTrainingArguments, RETIRED_TRAINING_KEYS),
        ("transformers-4.49.0 TrainingArguments", HFTrainingArguments, RETIRED_TRAINING_KEYS),
        ("trl-0.13.0 DPOConfig", HFDPOArguments, RETIRED_DPO_KEYS),
    ],
)
def test_every_field_of_the_old_libraries_is_accepted_or_has_a_rule(
    source: str, schema: Any, retired: dict[str, str]
) -> None:
    accepted = set(schema.model_fields) | {"max_prompt_length", "max_completion_length"}
    unaccounted = sorted(name for name in LEGACY_FIELDS[source] if name not in accepted and name not in retired)
    assert unaccounted == []


@pytest.mark.parametrize(
    ("source", "build", "cls"),
    [
        ("transformers-4.57.3 TrainingArguments", sft, SFTConfig),
        ("transformers-4.49.0 TrainingArguments", sft, SFTConfig),
        ("trl-0.13.0 DPOConfig", dpo, DPOConfig),
    ],
)
def test_every_old_field_at_its_old_default_is_accepted(source: str, build: Any, cls: Any) -> None:
    """What the original accepted at its defaults loads (the batch fields it computed itself it refused too)."""
    defaults = {
        name: field["default"]
        for name, field in LEGACY_FIELDS[source].items()
        if field["literal"] and name not in ENGINE_OWNED_KEYS
    }
    config = cls.validate_config(build(defaults))
    removed = {name for name in defaults if name not in type(config.training_args).model_fields}
    noted = {u.path.removeprefix("training_args.") for u in config.upgrades}
    assert removed <= noted  # no field disappears without a note


def test_retired_fields_are_not_fields_of_the_schema() -> None:
    for name in [*TRAINING_ARGS, *DPO_ARGS]:
        assert name not in HFDPOArguments.model_fields, name


# -- each translation --------------------------------------------------------------------------------------------------

TRANSLATIONS = [
    ({"warmup_ratio": 0.05}, {"warmup_steps": 0.05}),
    ({"warmup_ratio": 1.0}, {"warmup_steps": 0.999999}),
    ({"warmup_ratio": 0.1, "warmup_steps": 20}, {"warmup_steps": 20}),  # warmup_steps won in transformers 4
    ({"evaluation_strategy": "no"}, {"eval_strategy": "no"}),
    ({"no_cuda": True}, {"use_cpu": True}),
    ({"adafactor": True}, {"optim": "adafactor"}),
    ({"group_by_length": True}, {"train_sampling_strategy": "group_by_length"}),
    ({"include_inputs_for_metrics": True}, {"include_for_metrics": ["inputs"]}),
    ({"push_to_hub_model_id": "m", "push_to_hub_organization": "org"}, {"hub_model_id": "org/m"}),
    ({"push_to_hub_token": "hf_x"}, {"hub_token": "hf_x"}),
    ({"torchdynamo": "inductor"}, {"torch_compile_backend": "inductor"}),
    ({"fsdp_min_num_params": 1000}, {"fsdp_config": {"min_num_params": 1000}}),
    (
        {"fsdp_transformer_layer_cls_to_wrap": "LlamaDecoderLayer"},
        {"fsdp_config": {"transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"]}},
    ),
    ({"dispatch_batches": False}, {"accelerator_config": {"dispatch_batches": False}}),
    ({"optim": "adamw_hf"}, {"optim": "adamw_torch"}),
    ({"optim": "adamw_apex_fused"}, {"optim": "adamw_torch_fused"}),
    ({"half_precision_backend": "apex", "fp16_opt_level": "O1"}, {}),
    ({"overwrite_output_dir": True, "logging_dir": "./logs", "save_safetensors": True}, {}),
]


@pytest.mark.parametrize(("old", "new"), TRANSLATIONS, ids=lambda case: ",".join(case) if case else "-")
def test_training_args_translation(old: dict[str, Any], new: dict[str, Any]) -> None:
    data = sft(dict(old))
    config = SFTConfig.validate_config(data)
    written = config.model_dump(exclude_unset=True)["training_args"]
    for key, value in new.items():
        assert written[key] == value
    assert not set(old) - set(new) & set(written)  # the old spellings are gone
    assert {u.path for u in config.upgrades} == {
        f"training_args.{k}" for k in old if k in TRAINING_ARGS or k == "optim"
    }
    assert data["training_args"] == old  # the caller's data is not rewritten


DPO_TRANSLATIONS = [
    ({"rpo_alpha": 0.5}, {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 0.5]}),
    ({"loss_type": "ipo", "rpo_alpha": 1.0}, {"loss_type": ["ipo", "sft"], "loss_weights": [1.0, 1.0]}),
    ({"loss_type": "aot_pair"}, {"loss_type": "aot_unpaired"}),
    ({"max_prompt_length": 128, "max_completion_length": 64}, {"max_prompt_length": 128}),
    ({"label_pad_token_id": -100, "padding_value": 0, "generate_during_eval": True, "max_target_length": 9}, {}),
    ({"reference_free": False, "is_encoder_decoder": False, "model_adapter_name": None}, {}),
]


@pytest.mark.parametrize(("old", "new"), DPO_TRANSLATIONS, ids=lambda case: ",".join(case) if case else "-")
def test_dpo_args_translation(old: dict[str, Any], new: dict[str, Any]) -> None:
    config = DPOConfig.validate_config(dpo(dict(old)))
    written = config.model_dump(exclude_unset=True)["training_args"]
    for key, value in new.items():
        assert written[key] == value
    for key in set(old) - set(new) - {"max_completion_length"}:
        assert key not in written


def test_model_args_translation_moves_quantization_to_quant_conf() -> None:
    model_args = {
        "torch_dtype": "bfloat16",
        "use_flash_attention_2": True,
        "use_auth_token": "hf_secret",
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "nf4",
        "low_cpu_mem_usage": True,
    }
    config = SFTConfig.validate_config(sft({}, run_conf={"model_args": model_args}))
    args = config.run_conf.model_args.from_pretrained_kwargs()
    assert args == {"dtype": "bfloat16", "attn_implementation": "flash_attention_2", "token": "hf_secret"}
    assert config.quant_conf.model_dump() == {
        **config.quant_conf.model_dump(),
        "quantization_type": "bits-and-bytes",
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "nf4",
    }
    # no note ever carries a credential's value
    assert all("hf_secret" not in str(note) for note in config.upgrades)


def test_generate_config_translation() -> None:
    data = {
        "model_conf": {"model": "m", "model_args": {"torch_dtype": "float16"}},
        "prompt_conf": {"type": "open-input", "input": "Hi"},
        "hf_gen_params": {"return_legacy_cache": True, "max_new_tokens": 4},
    }
    config = GenerateConfig.validate_config(data)
    assert config.model_conf.model_args.dtype == "float16"
    assert config.hf_gen_params == {"max_new_tokens": 4}
    assert {u.path for u in config.upgrades} == {
        "model_conf.model_args.torch_dtype",
        "hf_gen_params.return_legacy_cache",
    }


def test_tracking_fields_of_the_first_version_are_dropped() -> None:
    tracking = {"mlflow_server_uri": "http://mlflow:5000", "experiment_name": "x", "run_id": None, "run_name": "a"}
    config = SFTConfig.validate_config(sft({}, tracking=tracking))
    assert config.tracking is not None
    assert config.tracking.experiment_name == "x"
    assert {u.path for u in config.upgrades} == {"tracking.run_id", "tracking.run_name"}


# -- what cannot be kept is refused, with the reason, at its path ------------------------------------------------------

REFUSALS = [
    (SFTConfig, {"save_safetensors": False}, "training_args.save_safetensors", "safetensors only"),
    (SFTConfig, {"half_precision_backend": "apex", "fp16_opt_level": "O2"}, "training_args.fp16_opt_level", "O2"),
    (SFTConfig, {"evaluation_strategy": "steps", "eval_strategy": "no"}, "training_args.evaluation_strategy", "only"),
    (SFTConfig, {"adafactor": True, "optim": "sgd"}, "training_args.adafactor", "one optimizer"),
    (SFTConfig, {"fsdp_min_num_params": 10, "fsdp_config": "fsdp.json"}, "training_args.fsdp_min_num_params", "file"),
    (SFTConfig, {"rpo_alpha": 0.5}, "training_args.rpo_alpha", "unknown key"),  # an SFT config never had it
    (DPOConfig, {"reference_free": True}, "training_args.reference_free", "simpo"),
    (DPOConfig, {"is_encoder_decoder": True}, "training_args.is_encoder_decoder", "causal"),
    (DPOConfig, {"ref_adapter_name": "ref"}, "training_args.ref_adapter_name", "one adapter"),
]


@pytest.mark.parametrize(("cls", "training_args", "loc", "reason"), REFUSALS)
def test_what_cannot_be_kept_is_refused_with_the_reason(
    cls: Any, training_args: dict[str, Any], loc: str, reason: str
) -> None:
    build = dpo if cls is DPOConfig else sft
    assert reason in issues(cls, build(training_args))[loc]


def test_model_args_that_cannot_be_kept_are_refused() -> None:
    found = issues(SFTConfig, sft({}, run_conf={"model_args": {"from_tf": True}}))
    assert "safetensors" in found["run_conf.model_args"]
    both = issues(SFTConfig, sft({}, run_conf={"model_args": {"torch_dtype": "float16", "dtype": "bfloat16"}}))
    assert "give only dtype" in both["run_conf.model_args"]
    assert set(MODEL_ARGS) >= {"torch_dtype", "use_auth_token", "load_in_4bit"}


def test_typos_still_fail_with_their_path() -> None:
    found = issues(SFTConfig, sft({"warmup_ration": 0.1, "overwrite_output_dir": True}))
    assert "did you mean 'warmup_steps'" in found["training_args.warmup_ration"]  # today's spelling
    assert set(found) == {"training_args.warmup_ration"}


def test_a_nested_config_is_upgraded_too() -> None:
    """The adapter conversion request carries a training config: the same reading applies."""
    data = copy.deepcopy(sft({"warmup_ratio": 0.1}))
    config = SFTConfig.model_validate(data)  # without validate_config: notes are logged, not collected
    assert config.training_args.warmup_steps == 0.1


@pytest.mark.parametrize("path", ORIGINAL_CONFIGS, ids=lambda p: p.stem)
def test_every_original_config_passes_the_apis_validation_as_a_yaml_body(path: Path) -> None:
    """The API's own parsing and validation of a YAML body (paths are resolved after, against the allowed roots)."""
    from api.resolve import parse_body, validate_config
    from jobcore.models import JobKind

    kind = {SFTConfig: JobKind.SFT, DPOConfig: JobKind.DPO, GenerateConfig: JobKind.GENERATE}[config_class(path)]
    config = validate_config(kind, parse_body(path.read_bytes(), "application/yaml"))
    assert config.upgrades == config_class(path).from_yaml_file(path).upgrades
