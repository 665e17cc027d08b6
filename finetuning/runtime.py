"""How a training run runs, as opposed to what it trains: options from the command line, the process's rank, seeding,
the output folder, whether an accelerator is here. Stopping on request is :mod:`finetuning.stopping`, resuming
:mod:`finetuning.checkpoints`, the final status and exit code :mod:`finetuning.tools.common`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from finetuning.config.hf_training_args import HFTrainingArguments
from finetuning.config.model import Determinism
from finetuning.settings import EngineSettings
from finetuning.storage.places import OutputPlace, output_place
from finetuning.tracking import TrackingCli

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class RunOptions:
    """How to run, as opposed to what to train: set from the command line and the environment."""

    settings: EngineSettings
    num_preprocess_workers: int = 4
    tracking: TrackingCli = field(default_factory=TrackingCli)
    events_file: Path | None = None
    # bucket inputs the config named and the run reads from local copies: config location -> the s3:// URI (the run's
    # manifest names them so, beside the hash of the copy it read)
    input_uris: dict[str, str] = field(default_factory=dict)


def is_main_process() -> bool:
    """Rank 0 under any launcher, read from the launcher's environment: creating accelerate's state here would
    fix the process group before the training arguments choose its backend."""
    from accelerate.utils import get_cpu_distributed_information

    return get_cpu_distributed_information().rank == 0


def seed_everything(seed: int, determinism: Determinism) -> None:
    import torch
    from transformers import enable_full_determinism, set_seed

    if determinism == Determinism.FULL:
        enable_full_determinism(seed)  # errors on any non-deterministic op
        return
    set_seed(seed)
    if determinism == Determinism.HALF:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def output_place_for(args: HFTrainingArguments, settings: EngineSettings) -> OutputPlace:
    """Where the run writes: ``training_args.output_dir`` (a folder, or an ``s3://`` prefix staged locally and
    published as it is written) or ``CHECKPOINTS_PATH``."""
    return output_place(args.output_dir or settings.checkpoints_path, settings)


def accelerator_available() -> bool:
    """A GPU (or another device torch treats as an accelerator) is present."""
    import torch

    return bool(torch.accelerator.is_available())
