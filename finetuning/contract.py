"""What the engine and the service's worker agree on, in one place: how a run is asked to stop, what its exit code
means, the events format version and its event types, which commands train (and so can stop at a checkpoint and
resume), the environment the worker hands the engine, and which checkpoint a run resumes from.

Light on purpose (no torch, no transformers): the worker and the API import it."""

from __future__ import annotations

import logging
import re
import signal
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path

logger = logging.getLogger(__name__)

# -- stopping and exit codes -----------------------------------------------------------------------------------------

STOP_SIGNAL = signal.SIGUSR1
"""Sent to the engine's process group (every rank under ``accelerate launch``) to ask a training run to save a
checkpoint at its next optimizer step boundary and stop. The worker sends it when it is shutting down or when a cancel
asks for a checkpoint; a person can send it too (``kill -USR1 <pid>``)."""

EXIT_OK = 0
EXIT_FAILED = 1  # the final status event says why
EXIT_BAD_INPUT = 2  # a usage or config error, before any work
EXIT_STOPPED = 75  # EX_TEMPFAIL: stopped on request, resumable; the final status event names the checkpoint

# the advice in an out-of-memory failure: the engine's when torch ran out, the worker's when the kernel killed the run
OOM_REMEDY = (
    "out of memory: lower batchsize_conf.max_per_device_train_batch_size (the total batch size stays the same: "
    "gradient accumulation makes up the difference), shorten sft_args.max_seq_length, set "
    "training_args.gradient_checkpointing: true, or load the model in 4-bit (quant_conf: {quantization_type: "
    "bits-and-bytes, load_in_4bit: true})"
)

# -- events ----------------------------------------------------------------------------------------------------------

EVENTS_VERSION = 1
"""Bumped only for changes that break readers (renamed/removed fields, changed meaning); new fields and types don't."""


class EventType(StrEnum):
    RUN_STARTED = "run_started"
    STORAGE = "storage"  # a bucket download or upload: its state, URI and bytes
    PHASE = "phase"
    METRICS = "metrics"
    EVAL = "eval"
    PROGRESS = "progress"
    PREPROCESSING = "preprocessing"  # data preparation: progress, rows/s, ETA, cache hits, skipped bad rows
    CHECKPOINT = "checkpoint"
    SAMPLES = "samples"  # GRPO: a few sampled completions of a logging step, with each grader's reward
    MANIFEST = "manifest"  # once per run: the config made concrete, input hashes, versions, machine (docs/manifest.md)
    LOG = "log"
    STATUS = "status"


class RunStatus(StrEnum):
    """Final status of an engine run (the job's ``queued``/``running`` states belong to the service)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


# -- commands and their environment ----------------------------------------------------------------------------------

TRAINING_COMMANDS: frozenset[str] = frozenset({"sft", "dpo", "grpo"})
"""The engine commands that train: they save a checkpoint when asked to stop and can resume from one."""

EVENTS_FILE_ENV = "FINETUNING_EVENTS_FILE"
JOB_ID_ENV = "FINETUNING_JOB_ID"
JOB_ATTEMPT_ENV = "FINETUNING_JOB_ATTEMPT"
STAGING_DIR_ENV = "FINETUNING_STAGING_DIR"
SECRET_ENV_PREFIX = "FINETUNING_SECRET__"
"""``${secrets.NAME}`` in a config is read from ``FINETUNING_SECRET__NAME`` in the engine's environment (the worker
sets it from the project's secret; a person running the CLI exports it)."""

# -- a run on a Ray cluster (finetuning.ray_train) ------------------------------------------------------------------

RAY_EVENT_MARKER = "@@finetuning-event@@ "
"""On a Ray cluster rank 0's events reach the worker through the Ray job's log: each event is one log line, this
marker and then the event's JSON (Ray puts its own prefix before the marker)."""
RAY_LAUNCH_MARKER = "@@finetuning-launch@@ "
"""A log line Ray's rank 0 writes each time the training group starts: the marker and ``{"launch": n, "world_size":
w}``; a launch after the first is Ray Train's restart after a lost worker or node."""
STOP_REQUEST_FILE = ".stop-requested"
"""Written into a Ray run's output location (a folder or a bucket prefix) to ask it to stop at a checkpoint: the
worker cannot signal processes on other machines, so every rank looks for this file and signals its own engine."""

# -- checkpoints -----------------------------------------------------------------------------------------------------

_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
# what the Trainer writes last into a checkpoint: a folder without it was cut off while being saved
_CHECKPOINT_COMPLETE = "trainer_state.json"


def checkpoint_step(path: Path) -> int | None:
    """The step of a ``checkpoint-N`` folder, None for any other name."""
    match = _CHECKPOINT_DIR.match(path.name)
    return int(match.group(1)) if match else None


def is_complete_checkpoint(path: Path) -> bool:
    """Saved to the end: the trainer state (written last) and weights are there."""
    return (path / _CHECKPOINT_COMPLETE).is_file() and any(path.glob("*.safetensors"))


UPLOAD_MARKER = ".upload-complete.json"
"""The object written last into an uploaded folder (a checkpoint in a bucket): without it the upload was cut off."""


def last_uploaded_checkpoint(keys: Iterable[str]) -> str | None:
    """The newest ``checkpoint-N`` among ``keys`` (object keys relative to a run's output prefix) whose upload
    completed (its :data:`UPLOAD_MARKER` is there), or None: the bucket's side of :func:`last_complete_checkpoint`."""
    steps: dict[str, int] = {}
    for key in keys:
        folder, _, name = key.partition("/")
        step = checkpoint_step(Path(folder))
        if step is not None and name == UPLOAD_MARKER:
            steps[folder] = step
    return max(steps, key=lambda folder: steps[folder]) if steps else None


def last_complete_checkpoint(*folders: Path) -> Path | None:
    """The newest ``checkpoint-N`` folder in ``folders`` that was saved to the end, or None: the one a run resumes from.

    A run killed while saving (a lost worker, the OOM killer) leaves a folder without its trainer state, or without
    weights: it is skipped, with a warning, and the run resumes from the checkpoint before it.
    """
    numbered: dict[Path, int] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            step = checkpoint_step(path)
            if step is not None and path.is_dir():
                numbered[path] = step
    for path, _step in sorted(numbered.items(), key=lambda item: (item[1], str(item[0])), reverse=True):
        if is_complete_checkpoint(path):
            return path
        logger.warning("skipping %s: it was not saved completely (the run stopped while saving it)", path)
    return None
