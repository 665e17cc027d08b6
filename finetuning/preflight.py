"""Checks that need the file system but no GPU: run before any model or data is loaded, so a missing model or
data file fails in seconds rather than after the queue and the model download."""

from __future__ import annotations

from pathlib import Path

from finetuning.config.data import ConcatenationInput, DataConf, WeightedMixInput
from finetuning.config.jobs import DPOConfig, GRPOConfig, SFTConfig
from finetuning.config.model import PretrainedPeftConf
from finetuning.errors import FinetuningError
from finetuning.models import model_reference_problem


class PreflightError(FinetuningError):
    """Inputs the run needs are missing. ``problems`` lists every (param, message); the first one is ``param``."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        code = "model_not_found" if problems[0][0].startswith(("run_conf", "peft_conf")) else "data_not_found"
        message = "; ".join(f"{param}: {text}" for param, text in problems)
        super().__init__(message, code, problems[0][0])

    def __str__(self) -> str:
        return self.message


def dataset_paths(data_conf: DataConf) -> list[tuple[str, str]]:
    """(param, path) of every file the run will read; zero-weight datasets are never read."""
    found: list[tuple[str, str]] = []
    for section_name in ("training_data", "validation_data"):
        section = getattr(data_conf, section_name)
        if isinstance(section, ConcatenationInput | WeightedMixInput):
            for i, ref in enumerate(section.datasets):
                if getattr(ref, "sampling_weight", 1.0) > 0:
                    found.append((f"data_conf.{section_name}.datasets[{i}].path", ref.path))
    return found


def preflight_training(config: SFTConfig | DPOConfig | GRPOConfig) -> None:
    problems: list[tuple[str, str]] = []
    references = [("run_conf.model", config.run_conf.model)]
    if config.run_conf.tokenizer:
        references.append(("run_conf.tokenizer", config.run_conf.tokenizer))
    if isinstance(config.peft_conf, PretrainedPeftConf):
        references.append(("peft_conf.name_or_path", config.peft_conf.name_or_path))
    for param, reference in references:
        problem = model_reference_problem(reference)
        if problem:
            problems.append((param, problem))
    for param, path in dataset_paths(config.data_conf):
        if not Path(path).expanduser().is_file():
            problems.append((param, f"no data file at '{path}'"))
    if problems:
        raise PreflightError(problems)
