import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from finetuning.config import ConfigError, DPOConfig, GenerateConfig, SFTConfig
from finetuning.config.data import WeightedMixInput
from finetuning.config.model import BnBQuantizationConf, GenericPeftConf

CONFIGS = Path(__file__).parents[1] / "assets" / "configs"


def minimal_sft() -> dict[str, Any]:
    return {
        "data_conf": {
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": "train.jsonl"}]},
            "validation_data": {"type": "NONE"},
        },
        "training_args": {},
        "batchsize_conf": {"total_train_batch_size": 8, "max_per_device_train_batch_size": 4},
        "peft_conf": {"peft_type": "NO_PEFT"},
        "run_conf": {},
        "sft_args": {},
    }


def issues(data: dict[str, Any], cls: Any = SFTConfig) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        cls.validate_config(data)
    return {issue.loc: issue.message for issue in caught.value.issues}


@pytest.mark.parametrize(("name", "cls"), [("sft", SFTConfig), ("dpo", DPOConfig), ("generate", GenerateConfig)])
def test_reference_examples_validate(name: str, cls: Any) -> None:
    cls.from_yaml_file(CONFIGS / f"{name}.yaml")


def test_original_style_config_validates_with_legacy_keys() -> None:
    config = SFTConfig.from_yaml_file(CONFIGS / "sft-original-full.yaml")
    assert config.run_conf.model_args.dtype == "bfloat16"  # legacy torch_dtype accepted
    assert config.run_conf.model_args.from_pretrained_kwargs()["use_cache"] is False  # extra keys pass through
    assert config.tracking is not None
    assert not config.tracking.enabled


def test_defaults_apply() -> None:
    config = SFTConfig.validate_config(minimal_sft())
    assert config.data_conf.chat_template_name == "mistral-with-system"
    assert config.data_conf.missing_pad_token_strategy == "bos-repurpose"
    assert config.run_conf.model == "/local_resources/basemodel"
    assert config.run_conf.final_checkpoint_name == "checkpoint-final"
    assert config.run_conf.model_args.trust_remote_code is False
    assert config.sft_args.max_seq_length == 2048
    assert config.sft_args.length_handling == "filter"
    assert config.overrides.lr_multiplier == 1.0
    assert config.quant_conf.quantization_type == "no-quantization"
    assert config.tracking is None
    assert config.training_args.learning_rate == 5e-5  # transformers' own default


def test_weighted_mix_defaults() -> None:
    mix = WeightedMixInput.model_validate({"datasets": [{"path": "a"}, {"path": "b", "sampling_weight": 0}]})
    assert mix.seed == 19851243
    assert [d.sampling_weight for d in mix.datasets] == [1.0, 0.0]


def test_unknown_key_names_full_path_and_near_miss() -> None:
    data = minimal_sft()
    data["data_conf"]["training_data"]["datasets"][0]["pth"] = "x"
    data["run_conf"]["modle"] = "m"
    found = issues(data)
    assert "did you mean 'path'" in found["data_conf.training_data.datasets[0].pth"]
    assert "did you mean 'model'" in found["run_conf.modle"]


def test_all_errors_are_reported_at_once() -> None:
    data = minimal_sft()
    data["training_args"]["learning_rat"] = 1
    del data["batchsize_conf"]["total_train_batch_size"]
    data["sft_args"]["length_handling"] = "chop"
    found = issues(data)
    assert set(found) == {
        "training_args.learning_rat",
        "batchsize_conf.total_train_batch_size",
        "sft_args.length_handling",
    }
    assert "did you mean 'learning_rate'" in found["training_args.learning_rat"]
    assert found["batchsize_conf.total_train_batch_size"] == "required field is missing"


@pytest.mark.parametrize(
    "key", ["per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"]
)
def test_computed_fields_cannot_be_set_even_to_their_default(key: str) -> None:
    data = minimal_sft()
    data["training_args"][key] = 1 if key == "gradient_accumulation_steps" else 8
    message = issues(data)[f"training_args.{key}"]
    assert "batchsize_conf.total_train_batch_size" in message


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("save_safetensors", False, "safetensors only"),
        ("max_seq_length", 512, "sft_args.max_seq_length"),
        ("mp_parameters", "--foo", "SageMaker"),
        ("per_gpu_train_batch_size", 4, "batchsize_conf.total_train_batch_size"),
        ("warmup_ratio", 1.5, "warmup_steps"),
    ],
)
def test_retired_training_args_that_cannot_be_kept_name_the_reason(key: str, value: Any, reason: str) -> None:
    data = minimal_sft()
    data["training_args"][key] = value
    assert reason in issues(data)[f"training_args.{key}"]


def test_retired_dpo_key_that_cannot_be_kept_names_the_reason() -> None:
    data = yaml.safe_load((CONFIGS / "dpo.yaml").read_text())
    data["training_args"]["reference_free"] = True
    assert "simpo" in issues(data, DPOConfig)["training_args.reference_free"]


def test_sft_args_is_an_unknown_key_for_dpo() -> None:
    data = yaml.safe_load((CONFIGS / "dpo.yaml").read_text())
    data["sft_args"] = {}
    assert "unknown key 'sft_args'" in issues(data, DPOConfig)["sft_args"]


def test_variant_tags_are_checked_and_dropped_from_paths() -> None:
    data = minimal_sft()
    data["data_conf"]["validation_data"] = {"type": "AUTO_SPLIT", "ratio": 1.5}
    data["peft_conf"] = {"peft_type": "LORA", "peft_kwargs": {}, "taks_type": "x"}
    found = issues(data)
    assert "data_conf.validation_data.ratio" in found
    assert "did you mean 'task_type'" in found["peft_conf.taks_type"]
    data = minimal_sft()
    data["data_conf"]["training_data"]["type"] = "SHUFFLE"
    assert "CONCATENATION" in issues(data)["data_conf.training_data"]


def test_generic_peft_type_accepts_any_peft_method() -> None:
    data = minimal_sft()
    data["peft_conf"] = {"peft_type": "IA3", "peft_kwargs": {"target_modules": ["k_proj"]}}
    config = SFTConfig.validate_config(data)
    assert isinstance(config.peft_conf, GenericPeftConf)
    assert config.peft_conf.task_type == "CAUSAL_LM"


def test_quantization_needs_exactly_one_mode() -> None:
    with pytest.raises(ValueError, match="load_in_4bit"):
        BnBQuantizationConf.model_validate({"load_in_4bit": True, "load_in_8bit": True})
    with pytest.raises(ValueError, match="load_in_4bit"):
        BnBQuantizationConf.model_validate({})


def test_unsafe_weights_are_refused() -> None:
    data = minimal_sft()
    data["run_conf"]["model_args"] = {"use_safetensors": False}
    assert "safetensors" in issues(data)["run_conf.model_args"]


def test_completions_only_with_unk_to_eos_is_rejected() -> None:
    data = minimal_sft()
    data["sft_args"]["train_on_completions_only"] = True
    data["data_conf"]["missing_pad_token_strategy"] = "unk-convert-to-eos"
    assert "unk-convert-to-eos" in str(issues(data))


def test_method_must_match_the_command() -> None:
    data = minimal_sft()
    data["method"] = "dpo"
    assert "method" in issues(data)


def test_data_type_is_forced_to_the_method() -> None:
    data = yaml.safe_load((CONFIGS / "dpo.yaml").read_text())
    assert DPOConfig.validate_config(data).data_conf.training_data.data_type == "DirectPreference"
    sft = minimal_sft()
    sft["data_conf"]["training_data"]["data_type"] = "DirectPreference"
    assert SFTConfig.validate_config(sft).data_conf.training_data.data_type == "ChatConversation"


@pytest.mark.parametrize("name", ["sft.yaml", "sft-original-full.yaml"])
def test_dump_and_reload_is_identical(name: str) -> None:
    config = SFTConfig.from_yaml_file(CONFIGS / name)
    dumped = config.to_yaml()
    assert SFTConfig.from_yaml(dumped) == config
    # enums are written as their plain values, so the dump is an ordinary config file
    assert "chat_template_name: " + config.data_conf.chat_template_name.value in dumped
    assert "!!python" not in dumped


def test_yaml_errors_and_missing_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        SFTConfig.from_yaml_file(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data_conf: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        SFTConfig.from_yaml_file(bad)


def test_json_schema_documents_the_yaml_format() -> None:
    schema = SFTConfig.model_json_schema()
    text = json.dumps(schema)
    for name in ("data_conf", "training_args", "batchsize_conf", "peft_conf", "sft_args", "quant_conf"):
        assert name in schema["properties"]
    training_args = schema["$defs"]["SFTTrainingArgs"]["properties"]
    assert "learning_rate" in training_args
    assert not {"per_device_train_batch_size", "gradient_accumulation_steps"} & set(training_args)
    assert "PRECOMPUTE_WEIGHTED_MIX" in text
    assert "learning_rate" in text


def test_schema_import_does_not_pull_in_torch() -> None:
    code = "import sys, finetuning.config; sys.exit(1 if {'torch', 'transformers'} & set(sys.modules) else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_completions_only_needs_a_template_with_markers() -> None:
    data = minimal_sft()
    data["sft_args"]["train_on_completions_only"] = True
    data["data_conf"]["chat_template_name"] = "keep-original"
    assert "keep-original" in str(issues(data))
