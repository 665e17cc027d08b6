"""``data_conf``: which files to train and validate on, and how conversations become tokens."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, field_validator

from finetuning.config.base import StrictModel
from finetuning.config.paths import DataFile


class DataType(StrEnum):
    CHAT_CONVERSATION = "ChatConversation"
    DIRECT_PREFERENCE = "DirectPreference"
    UNPAIRED_PREFERENCE = "UnpairedPreference"


class ChatTemplateName(StrEnum):
    MISTRAL_WITH_SYSTEM = "mistral-with-system"
    CHAT_ML = "chat-ml"
    PORO = "poro"
    KEEP_ORIGINAL = "keep-original"
    SIMPLIFIED_LLAMA31 = "simplified-llama31"


class MissingPadTokenStrategy(StrEnum):
    EOS_REPURPOSE = "eos-repurpose"
    BOS_REPURPOSE = "bos-repurpose"
    UNK_REPURPOSE = "unk-repurpose"
    UNK_CONVERT_TO_EOS = "unk-convert-to-eos"


class DatasetRef(StrictModel):
    path: DataFile = Field(description="A JSONL file or a JSON array of records.")


class WeightedDatasetRef(DatasetRef):
    sampling_weight: float = Field(
        default=1.0,
        ge=0.0,
        description="Relative sampling weight; 0 skips the dataset. All 1.0 gives a strict round-robin.",
    )


class ConcatenationInput(StrictModel):
    """The files joined in the listed order."""

    type: Literal["CONCATENATION"] = "CONCATENATION"
    datasets: list[DatasetRef] = Field(min_length=1)
    data_type: DataType = DataType.CHAT_CONVERSATION


class WeightedMixInput(StrictModel):
    """Interleaved by weight until every dataset is used up (smaller ones are oversampled)."""

    type: Literal["PRECOMPUTE_WEIGHTED_MIX"] = "PRECOMPUTE_WEIGHTED_MIX"
    datasets: list[WeightedDatasetRef] = Field(min_length=1)
    seed: int = 19851243
    data_type: DataType = DataType.CHAT_CONVERSATION

    @field_validator("datasets")
    @classmethod
    def _some_weight(cls, datasets: list[WeightedDatasetRef]) -> list[WeightedDatasetRef]:
        if sum(d.sampling_weight for d in datasets) <= 0:
            raise ValueError("the sampling weights sum to zero: give at least one dataset a positive weight")
        return datasets


class AutoSplitInput(StrictModel):
    """Hold out a random fraction of the processed training data for validation."""

    type: Literal["AUTO_SPLIT"] = "AUTO_SPLIT"
    ratio: float = Field(default=0.2, gt=0.0, lt=1.0)
    seed: int = 1289525893
    data_type: DataType = DataType.CHAT_CONVERSATION


class NoneInput(StrictModel):
    """No validation set."""

    type: Literal["NONE"] = "NONE"
    data_type: DataType = DataType.CHAT_CONVERSATION


TrainingInput = Annotated[ConcatenationInput | WeightedMixInput, Field(discriminator="type")]
ValidationInput = Annotated[ConcatenationInput | AutoSplitInput | NoneInput, Field(discriminator="type")]


class DataConf(StrictModel):
    training_data: TrainingInput
    validation_data: ValidationInput
    chat_template_name: ChatTemplateName = ChatTemplateName.MISTRAL_WITH_SYSTEM
    padding_side: Literal["right", "left"] = "right"
    missing_pad_token_strategy: MissingPadTokenStrategy = MissingPadTokenStrategy.BOS_REPURPOSE
    max_bad_rows: int = Field(
        default=0,
        ge=0,
        description="Records that are not valid (not JSON, not a record of data_type, not renderable by the chat "
        "template) skipped across all data files before the run fails; 0 fails on the first one. Every bad row is "
        "named by file and line.",
    )
