"""``run_conf``, ``peft_conf`` and ``quant_conf``: which model to load, how, and what to train of it."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from finetuning.config import legacy
from finetuning.config.base import StrictModel
from finetuning.config.paths import CheckpointDir, ModelPath, ModelSubfolder, OutputName, ServiceDir

# peft.PeftType values (peft 0.21.2); a test checks this list against the installed peft.
PEFT_TYPES = (
    "PROMPT_TUNING",
    "MULTITASK_PROMPT_TUNING",
    "P_TUNING",
    "PREFIX_TUNING",
    "LORA",
    "ADALORA",
    "ADAMSS",
    "BOFT",
    "ADAPTION_PROMPT",
    "IA3",
    "BEFT",
    "LILY",
    "LOHA",
    "LOKR",
    "OFT",
    "POLY",
    "LN_TUNING",
    "VERA",
    "FROD",
    "PVERA",
    "FOURIERFT",
    "GLORA",
    "XLORA",
    "HRA",
    "VBLORA",
    "UNILORA",
    "CPT",
    "MISS",
    "RANDLORA",
    "ROAD",
    "TRAINABLE_TOKENS",
    "HIRA",
    "SHIRA",
    "C3A",
    "WAVEFT",
    "OSF",
    "DELORA",
    "GRALORA",
    "CARTRIDGE",
    "TINYLORA",
    "PSOFT",
    "PEANUT",
    "SHADOW",
    "SUPERTUNING",
    "DEFT",
)
GenericPeftType = Literal[PEFT_TYPES]  # type: ignore[valid-type]  # a Literal built from the tuple above


class Determinism(StrEnum):
    NO = "no"
    HALF = "half"
    FULL = "full"


class ModelArgs(StrictModel):
    """Keyword arguments for ``AutoModelForCausalLM.from_pretrained``; other keys pass through unchanged."""

    model_config = ConfigDict(extra="allow")

    dtype: str | None = Field(default=None, description='"auto" or a torch dtype name such as "bfloat16".')
    attn_implementation: str | None = None
    device_map: str | dict[str, Any] | None = None
    max_memory: dict[str, Any] | None = None
    revision: str | None = None
    token: str | bool | None = None
    cache_dir: ServiceDir | None = None
    local_files_only: bool | None = None
    offload_folder: ServiceDir | None = None
    variant: str | None = None
    subfolder: ModelSubfolder | None = None
    tp_plan: str | dict[str, Any] | None = None
    trust_remote_code: bool = Field(
        default=False, description="Run the model repository's own Python code. Off unless you trust the source."
    )

    @model_validator(mode="before")
    @classmethod
    def _retired_and_unsafe_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            # extra keys pass through to from_pretrained: a retired one left here (finetuning.config.legacy could
            # not translate its value) would be ignored or fail there, so it is refused now
            retired = [key for key in data if key in legacy.MODEL_ARGS]
            if retired:
                raise ValueError("; ".join(f"{key}: {legacy.MODEL_ARGS[key].refusal}" for key in retired))
            if data.get("use_safetensors") is False:
                raise ValueError("use_safetensors: false is refused: the engine loads safetensors weights only")
        return data

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        """Only what the user set, plus extra keys, so library defaults stay in force."""
        return self.model_dump(exclude_unset=True)


class RunConf(StrictModel):
    model: ModelPath = Field(default="/local_resources/basemodel", description="A local folder or a hub id.")
    model_args: ModelArgs = Field(default_factory=ModelArgs)
    tokenizer: ModelPath | None = Field(default=None, description="Defaults to `model`.")
    use_fast_tokenizer: bool = True
    resume_from_checkpoint: bool | CheckpointDir = Field(
        default=False,
        description='true/false, a checkpoint folder, or "auto": the last checkpoint in output_dir if there is one.',
    )
    final_checkpoint_name: OutputName = "checkpoint-final"
    determinism: Determinism = Determinism.NO


class NoPeftConf(StrictModel):
    """Full-parameter training."""

    peft_type: Literal["NO_PEFT"] = "NO_PEFT"


class PretrainedPeftConf(StrictModel):
    """Continue training an existing adapter."""

    peft_type: Literal["PRETRAINED_PEFT"] = "PRETRAINED_PEFT"
    name_or_path: ModelPath


class GenericPeftConf(StrictModel):
    """A new adapter of any PEFT type; ``peft_kwargs`` go to the matching PEFT config class."""

    peft_type: GenericPeftType
    task_type: str = "CAUSAL_LM"
    peft_kwargs: dict[str, Any] = Field(default_factory=dict)


PeftConf = Annotated[NoPeftConf | PretrainedPeftConf | GenericPeftConf, Field(discriminator="peft_type")]


class NoQuantizationConf(StrictModel):
    quantization_type: Literal["no-quantization"] = "no-quantization"


class BnBQuantizationConf(StrictModel):
    """bitsandbytes quantization (``transformers.BitsAndBytesConfig`` fields)."""

    quantization_type: Literal["bits-and-bytes"] = "bits-and-bytes"
    load_in_8bit: bool = False
    load_in_4bit: bool = False
    llm_int8_threshold: float = 6.0
    llm_int8_skip_modules: list[str] | None = None
    llm_int8_enable_fp32_cpu_offload: bool = False
    llm_int8_has_fp16_weight: bool = False
    bnb_4bit_compute_dtype: str | None = None
    bnb_4bit_quant_type: Literal["fp4", "nf4"] = "fp4"
    bnb_4bit_use_double_quant: bool = False
    bnb_4bit_quant_storage: str | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> BnBQuantizationConf:
        if self.load_in_4bit and self.load_in_8bit:
            raise ValueError("choose one of load_in_4bit and load_in_8bit")
        if not (self.load_in_4bit or self.load_in_8bit):
            raise ValueError("bits-and-bytes quantization needs load_in_4bit: true or load_in_8bit: true")
        return self


QuantConf = Annotated[NoQuantizationConf | BnBQuantizationConf, Field(discriminator="quantization_type")]
