"""The job kinds: the request schema of each, and how an earlier job's output is named (``job:<id>[/<artifact>]``).
Which fields name files is not listed here: the schema marks them (:mod:`finetuning.config.paths`) and
:mod:`api.resolve` confines every marked field it finds. The command a worker runs is :mod:`worker.launch`'s."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from finetuning.config import DPOConfig, GenerateConfig, GRPOConfig, SFTConfig, StrictModel
from finetuning.config.paths import ModelPath
from jobcore.models import Job, JobKind


class MergeRequest(StrictModel):
    """Merge an adapter into its base model (``merge_adapter``)."""

    base_model: ModelPath = Field(description="Base model folder, hub id, or job:<id>/new_basemodel.")
    adapter: ModelPath = Field(description="Adapter folder or job:<id> of the training job that made it.")
    tokenizer: ModelPath | None = Field(default=None, description="Defaults to the adapter's tokenizer.")
    device_map: str | dict[str, Any] = Field(default="auto", description="auto, cpu, cuda or a device map.")


class AdapterConversionRequest(StrictModel):
    """Make an adapter loadable by vLLM (``create_vllm_compatible_adapter``); the adapter is copied first, so the
    job that made it keeps its output unchanged."""

    adapter: ModelPath = Field(description="Adapter folder or job:<id> of the training job that made it.")
    training_config: SFTConfig | DPOConfig | GRPOConfig | None = Field(
        default=None,
        description="The config the adapter was trained with; taken from the training job when adapter is job:<id>.",
    )


REQUEST_MODELS: dict[JobKind, type[StrictModel]] = {
    JobKind.SFT: SFTConfig,
    JobKind.DPO: DPOConfig,
    JobKind.GRPO: GRPOConfig,
    JobKind.MERGE: MergeRequest,
    JobKind.ADAPTER_CONVERSION: AdapterConversionRequest,
    JobKind.GENERATE: GenerateConfig,
}

# The artifact a bare ``job:<id>`` reference means, by the referenced job's kind.
DEFAULT_ARTIFACT: dict[JobKind, str] = {
    JobKind.SFT: "final_checkpoint",
    JobKind.DPO: "final_checkpoint",
    JobKind.GRPO: "final_checkpoint",
    JobKind.MERGE: "model_path",
    JobKind.ADAPTER_CONVERSION: "adapter_path",
    JobKind.GENERATE: "output",
}

# job:<id>, job:<id>/<artifact> (a name the job recorded), job:<id>/checkpoint-<step> (a training job's checkpoint)
JOB_REFERENCE = re.compile(r"^job:(?P<job_id>[0-9a-fA-F-]{36})(?:/(?P<artifact>[A-Za-z0-9_]+|checkpoint-\d+))?$")


@dataclass(frozen=True)
class JobReference:
    job_id: str
    artifact: str | None


def parse_job_reference(value: str) -> JobReference | None:
    match = JOB_REFERENCE.match(value)
    return JobReference(match["job_id"].lower(), match["artifact"]) if match else None


def training_output_dir(job: Job) -> str | None:
    """Where a training job writes (its folder or bucket prefix, as the worker runs it), from its resolved config;
    None when the config names none (other kinds)."""
    output_dir = ((job.resolved or {}).get("config") or {}).get("training_args", {}).get("output_dir")
    return output_dir if isinstance(output_dir, str) and output_dir else None
