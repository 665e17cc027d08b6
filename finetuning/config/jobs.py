"""The top-level configs: one class per command, the same for the YAML file and the API's JSON body."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import Field, model_validator

from finetuning.config.base import StrictModel
from finetuning.config.data import DataConf, DataType
from finetuning.config.model import ModelArgs, NoQuantizationConf, PeftConf, QuantConf, RunConf
from finetuning.config.tracking import TrackingConf
from finetuning.config.training import BatchsizeConf, DPOTrainingArgs, Overrides, SFTArgs, SFTTrainingArgs

logger = logging.getLogger(__name__)


def _force_data_type(data_conf: DataConf, wanted: DataType) -> None:
    for name in ("training_data", "validation_data"):
        section = getattr(data_conf, name)
        if getattr(section, "type", None) == "NONE" or section.data_type == wanted:
            continue
        if "data_type" in section.model_fields_set:
            logger.warning("data_conf.%s.data_type set to %s (was %s)", name, wanted, section.data_type)
        section.data_type = wanted
        section.model_fields_set.discard("data_type")


class SFTConfig(StrictModel):
    """Supervised finetuning (``finetuning sft config.yaml``)."""

    method: Literal["sft"] = "sft"
    data_conf: DataConf
    training_args: SFTTrainingArgs
    batchsize_conf: BatchsizeConf
    peft_conf: PeftConf
    run_conf: RunConf
    sft_args: SFTArgs
    overrides: Overrides = Field(default_factory=Overrides)
    tracking: TrackingConf | None = None
    quant_conf: QuantConf = Field(default_factory=NoQuantizationConf)

    @model_validator(mode="after")
    def _derived(self) -> SFTConfig:
        _force_data_type(self.data_conf, DataType.CHAT_CONVERSATION)
        if self.sft_args.train_on_completions_only:
            if self.data_conf.missing_pad_token_strategy == "unk-convert-to-eos":
                raise ValueError(
                    "sft_args.train_on_completions_only cannot be combined with "
                    "data_conf.missing_pad_token_strategy: unk-convert-to-eos; choose another pad strategy"
                )
            if self.data_conf.chat_template_name == "keep-original":
                raise ValueError(
                    "sft_args.train_on_completions_only needs the assistant markers of a built-in template; "
                    "data_conf.chat_template_name: keep-original has none (choose e.g. chat-ml)"
                )
        return self


class DPOConfig(StrictModel):
    """Preference optimization (``finetuning dpo config.yaml``); DPO knobs live in ``training_args``."""

    method: Literal["dpo"] = "dpo"
    data_conf: DataConf
    training_args: DPOTrainingArgs
    batchsize_conf: BatchsizeConf
    peft_conf: PeftConf
    run_conf: RunConf
    overrides: Overrides = Field(default_factory=Overrides)
    tracking: TrackingConf | None = None
    quant_conf: QuantConf = Field(default_factory=NoQuantizationConf)

    @model_validator(mode="after")
    def _derived(self) -> DPOConfig:
        _force_data_type(self.data_conf, DataType.DIRECT_PREFERENCE)
        return self


class GenerateModelConf(StrictModel):
    model: str
    model_args: ModelArgs = Field(default_factory=ModelArgs)
    adapter: str | None = None
    tokenizer: str | None = Field(default=None, description="Defaults to the adapter if set, else the model.")


class OpenInputPrompt(StrictModel):
    type: Literal["open-input"] = "open-input"
    input: str = ""
    num_samples: int = Field(default=1, ge=1)


class EvalDataRef(StrictModel):
    path: str


class EvalDataPrompt(StrictModel):
    type: Literal["eval-data"] = "eval-data"
    data: EvalDataRef


class GenerateConfig(StrictModel):
    """Generation with HF ``generate`` (``generate config.yaml output.yaml``)."""

    model_conf: GenerateModelConf
    prompt_conf: OpenInputPrompt | EvalDataPrompt = Field(discriminator="type")
    hf_gen_params: dict[str, Any] = Field(default_factory=dict, description="transformers.GenerationConfig fields")
    quant_conf: QuantConf = Field(default_factory=NoQuantizationConf)


CONFIG_CLASSES: dict[str, type[StrictModel]] = {"sft": SFTConfig, "dpo": DPOConfig, "generate": GenerateConfig}
