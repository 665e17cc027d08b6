"""The job kinds: the request schema of each, and which of its fields name files (checked against the allowed roots,
or chained to an earlier job's output with ``job:<id>[/<artifact>]``). The command a worker runs is
:mod:`worker.launch`'s."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from finetuning.config import DPOConfig, GenerateConfig, SFTConfig, StrictModel
from finetuning.config.data import ConcatenationInput, WeightedMixInput
from finetuning.config.model import PretrainedPeftConf
from jobcore.models import JobKind


class MergeRequest(StrictModel):
    """Merge an adapter into its base model (``merge_adapter``)."""

    base_model: str = Field(description="Base model folder, hub id, or job:<id>/new_basemodel.")
    adapter: str = Field(description="Adapter folder or job:<id> of the training job that made it.")
    tokenizer: str | None = Field(default=None, description="Defaults to the adapter's tokenizer.")
    device_map: str | dict[str, Any] = Field(default="auto", description="auto, cpu, cuda or a device map.")


class AdapterConversionRequest(StrictModel):
    """Make an adapter loadable by vLLM (``create_vllm_compatible_adapter``); the adapter is copied first, so the
    job that made it keeps its output unchanged."""

    adapter: str = Field(description="Adapter folder or job:<id> of the training job that made it.")
    training_config: SFTConfig | DPOConfig | None = Field(
        default=None,
        description="The config the adapter was trained with; taken from the training job when adapter is job:<id>.",
    )


REQUEST_MODELS: dict[JobKind, type[StrictModel]] = {
    JobKind.SFT: SFTConfig,
    JobKind.DPO: DPOConfig,
    JobKind.MERGE: MergeRequest,
    JobKind.ADAPTER_CONVERSION: AdapterConversionRequest,
    JobKind.GENERATE: GenerateConfig,
}

# The artifact a bare ``job:<id>`` reference means, by the referenced job's kind.
DEFAULT_ARTIFACT: dict[JobKind, str] = {
    JobKind.SFT: "final_checkpoint",
    JobKind.DPO: "final_checkpoint",
    JobKind.MERGE: "model_path",
    JobKind.ADAPTER_CONVERSION: "adapter_path",
    JobKind.GENERATE: "output",
}

JOB_REFERENCE = re.compile(r"^job:(?P<job_id>[0-9a-fA-F-]{36})(?:/(?P<artifact>[A-Za-z0-9_]+))?$")


@dataclass(frozen=True)
class JobReference:
    job_id: str
    artifact: str | None


def parse_job_reference(value: str) -> JobReference | None:
    match = JOB_REFERENCE.match(value)
    return JobReference(match["job_id"].lower(), match["artifact"]) if match else None


@dataclass(frozen=True)
class PathField:
    """A config field that names a model, adapter, tokenizer or data file: its dotted location and value."""

    loc: str
    value: str
    is_model: bool  # a model reference may be a hub id; a data file may not


def path_fields(kind: JobKind, config: StrictModel) -> Iterator[PathField]:
    """Every field of ``config`` that names something on disk (or a hub id, or a job reference)."""
    if isinstance(config, SFTConfig | DPOConfig):
        yield PathField("run_conf.model", config.run_conf.model, True)
        if config.run_conf.tokenizer:
            yield PathField("run_conf.tokenizer", config.run_conf.tokenizer, True)
        if isinstance(config.peft_conf, PretrainedPeftConf):
            yield PathField("peft_conf.name_or_path", config.peft_conf.name_or_path, True)
        for section in ("training_data", "validation_data"):
            data = getattr(config.data_conf, section)
            if isinstance(data, ConcatenationInput | WeightedMixInput):
                for i, ref in enumerate(data.datasets):
                    yield PathField(f"data_conf.{section}.datasets[{i}].path", ref.path, False)
    elif isinstance(config, MergeRequest):
        yield PathField("base_model", config.base_model, True)
        yield PathField("adapter", config.adapter, True)
        if config.tokenizer:
            yield PathField("tokenizer", config.tokenizer, True)
    elif isinstance(config, AdapterConversionRequest):
        yield PathField("adapter", config.adapter, True)
    elif isinstance(config, GenerateConfig):
        yield PathField("model_conf.model", config.model_conf.model, True)
        for name in ("adapter", "tokenizer"):
            value = getattr(config.model_conf, name)
            if value:
                yield PathField(f"model_conf.{name}", value, True)
        if config.prompt_conf.type == "eval-data":
            yield PathField("prompt_conf.data.path", config.prompt_conf.data.path, False)


def set_field(data: dict[str, Any], loc: str, value: Any) -> None:
    """Set ``data`` at a dotted location such as ``data_conf.training_data.datasets[0].path``."""
    parts = [p for p in re.split(r"\.|\[(\d+)\]", loc) if p]
    target: Any = data
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
