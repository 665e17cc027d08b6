"""The top-level configs: one class per command, the same for the YAML file and the API's JSON body."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import Field, model_validator

from finetuning.config import legacy, startup
from finetuning.config.base import ConfigIssue, StrictModel
from finetuning.config.data import DataConf, DataType
from finetuning.config.graders import Grader, check_unique_names
from finetuning.config.model import ModelArgs, NoQuantizationConf, PeftConf, QuantConf, RunConf
from finetuning.config.paths import DataFile, ModelPath
from finetuning.config.tracking import TrackingConf
from finetuning.config.training import (
    BatchsizeConf,
    DPOTrainingArgs,
    GRPOArgs,
    GRPOTrainingArgs,
    Overrides,
    SFTArgs,
    SFTTrainingArgs,
)

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

    @model_validator(mode="before")
    @classmethod
    def _today_spelling(cls, data: Any) -> Any:
        return legacy.upgraded(data, "sft")

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

    def startup_problems(self) -> list[ConfigIssue]:
        return startup.training_arguments_problems(self.training_args) + startup.trainer_problems(self)


# The preference losses ``training_args.loss_type`` accepts, and the TRL trainer that runs each.
DPO_LOSS_TYPES = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
)
KTO_LOSS_TYPES = ("kto", "apo_zero_unpaired")
CPO_LOSS_TYPES = ("simpo", "cpo")
ORPO_LOSS_TYPES = ("orpo",)
PreferenceTrainerName = Literal["dpo", "kto", "cpo", "orpo"]


def preference_trainer(loss_type: str | list[str]) -> PreferenceTrainerName:
    """Which TRL trainer runs ``loss_type``; a list combines DPO losses only."""
    names = [loss_type] if isinstance(loss_type, str) else list(loss_type)
    if not names:
        raise ValueError("loss_type is empty: give a loss such as sigmoid")
    unknown = [n for n in names if n not in DPO_LOSS_TYPES + KTO_LOSS_TYPES + CPO_LOSS_TYPES + ORPO_LOSS_TYPES]
    if unknown:
        known = ", ".join(DPO_LOSS_TYPES + KTO_LOSS_TYPES + CPO_LOSS_TYPES + ORPO_LOSS_TYPES)
        raise ValueError(f"unknown loss_type {', '.join(unknown)}; choose from {known}")
    if len(names) > 1 and any(n not in DPO_LOSS_TYPES for n in names):
        raise ValueError(
            "only DPO losses can be combined in a list (with loss_weights); kto, orpo, simpo and cpo each run alone"
        )
    if names[0] in KTO_LOSS_TYPES:
        return "kto"
    if names[0] in CPO_LOSS_TYPES:
        return "cpo"
    if names[0] in ORPO_LOSS_TYPES:
        return "orpo"
    return "dpo"


class DPOConfig(StrictModel):
    """Preference optimization (``finetuning dpo config.yaml``); DPO knobs live in ``training_args``, and
    ``training_args.loss_type`` also selects the related methods (KTO, ORPO, SimPO/CPO)."""

    @model_validator(mode="before")
    @classmethod
    def _today_spelling(cls, data: Any) -> Any:
        return legacy.upgraded(data, "dpo")

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
        trainer = preference_trainer(self.training_args.loss_type)
        unpaired = self.data_conf.training_data.data_type == DataType.UNPAIRED_PREFERENCE
        if unpaired and trainer != "kto":
            raise ValueError(
                "UnpairedPreference data (one labelled completion per prompt) needs training_args.loss_type: kto "
                "or apo_zero_unpaired; the other methods need DirectPreference pairs"
            )
        _force_data_type(self.data_conf, DataType.UNPAIRED_PREFERENCE if unpaired else DataType.DIRECT_PREFERENCE)
        return self

    @property
    def trainer_name(self) -> PreferenceTrainerName:
        return preference_trainer(self.training_args.loss_type)

    def startup_problems(self) -> list[ConfigIssue]:
        return (
            startup.training_arguments_problems(self.training_args)
            + startup.trainer_problems(self)
            + startup.dpo_trainer_problems(self)
        )


class GRPOConfig(StrictModel):
    """Reinforcement finetuning with GRPO (``finetuning grpo config.yaml``): for each prompt of the data the model
    samples ``grpo_args.num_generations`` answers, the built-in ``graders`` score each one, and the model learns from
    how each answer scored against the others for its prompt. Data rows hold ``messages`` (the prompt, rendered with
    ``data_conf.chat_template_name``) and any reference fields the graders read (``{{item.FIELD}}``)."""

    @model_validator(mode="before")
    @classmethod
    def _today_spelling(cls, data: Any) -> Any:
        return legacy.upgraded(data, "grpo")

    method: Literal["grpo"] = "grpo"
    data_conf: DataConf
    training_args: GRPOTrainingArgs
    batchsize_conf: BatchsizeConf
    peft_conf: PeftConf
    run_conf: RunConf
    grpo_args: GRPOArgs = Field(default_factory=GRPOArgs)
    graders: list[Grader] = Field(
        min_length=1,
        description="How each answer is scored: the run's reward is the weighted sum (graders[].weight) of these "
        "graders' rewards, each in [0, 1].",
    )
    overrides: Overrides = Field(default_factory=Overrides)
    tracking: TrackingConf | None = None
    quant_conf: QuantConf = Field(default_factory=NoQuantizationConf)

    @model_validator(mode="after")
    def _derived(self) -> GRPOConfig:
        check_unique_names(self.graders)
        # rows are conversations (the prompt) with extra reference fields
        _force_data_type(self.data_conf, DataType.CHAT_CONVERSATION)
        return self

    def startup_problems(self) -> list[ConfigIssue]:
        return (
            startup.training_arguments_problems(self.training_args)
            + startup.trainer_problems(self)
            + startup.grpo_trainer_problems(self)
        )


class GenerateModelConf(StrictModel):
    model: ModelPath
    model_args: ModelArgs = Field(default_factory=ModelArgs)
    adapter: ModelPath | None = None
    tokenizer: ModelPath | None = Field(default=None, description="Defaults to the adapter if set, else the model.")


class OpenInputPrompt(StrictModel):
    type: Literal["open-input"] = "open-input"
    input: str = ""
    num_samples: int = Field(default=1, ge=1)
    apply_chat_template: bool = Field(
        default=False,
        description="false (the default, as in the original engine): input is sent as given, a raw continuation. "
        "true: input is rendered as one user turn with the tokenizer's chat template and the generation prompt.",
    )


class EvalDataRef(StrictModel):
    path: DataFile


class EvalDataPrompt(StrictModel):
    type: Literal["eval-data"] = "eval-data"
    data: EvalDataRef


class GenerateConfig(StrictModel):
    """Generation with HF ``generate`` (``generate config.yaml output.yaml``)."""

    @model_validator(mode="before")
    @classmethod
    def _today_spelling(cls, data: Any) -> Any:
        return legacy.upgraded(data, "generate")

    model_conf: GenerateModelConf
    prompt_conf: OpenInputPrompt | EvalDataPrompt = Field(discriminator="type")
    hf_gen_params: dict[str, Any] = Field(default_factory=dict, description="transformers.GenerationConfig fields")
    quant_conf: QuantConf = Field(default_factory=NoQuantizationConf)
    batch_size: int = Field(
        default=8,
        ge=1,
        description="Prompts generated together (left-padded) in one generate call; lower it if memory runs out.",
    )
    seed: int | None = Field(
        default=None,
        description="Seeds the random generators before generating, so that sampling (do_sample: true) repeats "
        "for the same prompts and batch_size. Unset: not seeded.",
    )


CONFIG_CLASSES: dict[str, type[StrictModel]] = {
    "sft": SFTConfig,
    "dpo": DPOConfig,
    "grpo": GRPOConfig,
    "generate": GenerateConfig,
}
