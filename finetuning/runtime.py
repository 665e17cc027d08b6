"""What every training method shares: options from the CLI, seeding, resolved training arguments, resuming,
and turning the run's outcome into a final status event."""

from __future__ import annotations

import functools
import logging
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from finetuning.batchsize import BatchPlan
from finetuning.config.base import ConfigError
from finetuning.config.hf_training_args import HFTrainingArguments
from finetuning.config.model import Determinism
from finetuning.data.errors import DataError
from finetuning.errors import FinetuningError
from finetuning.events import EventWriter
from finetuning.settings import EngineSettings
from finetuning.tracking import TrackingCli

if TYPE_CHECKING:
    from transformers import TrainingArguments

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class RunOptions:
    """How to run, as opposed to what to train: set from the command line and the environment."""

    settings: EngineSettings
    num_preprocess_workers: int = 4
    tracking: TrackingCli = field(default_factory=TrackingCli)
    events_file: Path | None = None


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


def output_dir_for(args: HFTrainingArguments, settings: EngineSettings) -> Path:
    return Path(args.output_dir or settings.checkpoints_path).expanduser()


def build_training_arguments(
    args: HFTrainingArguments,
    plan: BatchPlan,
    *,
    output_dir: Path,
    learning_rate: float,
    report_to: str | list[str],
    full_determinism: bool,
    arguments_class: type[TrainingArguments] | None = None,
    extra: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
) -> TrainingArguments:
    """The library's arguments: what the user set, the computed batch sizes, and the engine's choices
    (``extra``; ``drop`` removes fields the arguments class does not have)."""
    from transformers import TrainingArguments

    kwargs = args.model_dump(exclude_unset=True, exclude=set(drop))
    kwargs.update(
        output_dir=str(output_dir),
        per_device_train_batch_size=plan.per_device_train_batch_size,
        per_device_eval_batch_size=plan.per_device_eval_batch_size,
        gradient_accumulation_steps=plan.gradient_accumulation_steps,
        learning_rate=learning_rate,
        report_to=report_to,
    )
    if full_determinism:
        kwargs["full_determinism"] = True
    if "use_cpu" not in kwargs and not accelerator_available():
        # a recipe written for GPUs (bf16: true, no use_cpu) runs on a machine without one: on the CPU, where bf16
        # is valid, rather than failing transformers' "no bf16 GPU" check
        logger.info("no accelerator here: training on the CPU (use_cpu: true)")
        kwargs["use_cpu"] = True
    # tokens per second in the events counts real (non-padding) tokens
    kwargs.setdefault("include_num_input_tokens_seen", "non_padding")
    # the filter reads every step's loss back from the device (a synchronisation per step) only to hide a NaN
    # from the logs; without it a NaN shows up in the logged loss, where it belongs
    kwargs.setdefault("logging_nan_inf_filter", False)
    if isinstance(kwargs.get("deepspeed"), dict):
        deepspeed = dict(kwargs["deepspeed"])
        deepspeed["train_micro_batch_size_per_gpu"] = plan.per_device_train_batch_size
        deepspeed["gradient_accumulation_steps"] = plan.gradient_accumulation_steps
        deepspeed["train_batch_size"] = plan.total_train_batch_size
        kwargs["deepspeed"] = deepspeed
    kwargs.update(extra or {})
    return (arguments_class or TrainingArguments)(**kwargs)


def accelerator_available() -> bool:
    """A GPU (or another device torch treats as an accelerator) is present."""
    import torch

    return bool(torch.accelerator.is_available())


_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
# what the Trainer writes last into a checkpoint: a folder without it was cut off while being saved
_CHECKPOINT_COMPLETE = "trainer_state.json"


def last_complete_checkpoint(output_dir: Path) -> Path | None:
    """The newest ``checkpoint-N`` folder in ``output_dir`` that was saved to the end, or None.

    A run killed while saving (a lost worker, the OOM killer) leaves a folder without its trainer state, or without
    weights: it is skipped, with a warning, and the run resumes from the checkpoint before it.
    """
    if not output_dir.is_dir():
        return None
    numbered = [
        (int(match.group(1)), path)
        for path in output_dir.iterdir()
        if path.is_dir() and (match := _CHECKPOINT_DIR.match(path.name))
    ]
    for _step, path in sorted(numbered, reverse=True):
        if (path / _CHECKPOINT_COMPLETE).is_file() and any(path.glob("*.safetensors")):
            return path
        logger.warning("skipping %s: it was not saved completely (the run stopped while saving it)", path)
    return None


def resolve_resume(value: bool | str, output_dir: Path) -> bool | str:
    """``auto``: the last complete checkpoint in ``output_dir`` if any, else a fresh start; ``true``: that
    checkpoint, which must exist; a path must exist."""
    if value == "auto":
        last = last_complete_checkpoint(output_dir)
        if last:
            logger.info("resuming from %s", last)
        return str(last) if last else False
    if value is True:
        last = last_complete_checkpoint(output_dir)
        if last is None:
            raise FinetuningError(
                f"resume_from_checkpoint is true but {output_dir} holds no checkpoint; use auto to start fresh "
                "when there is none",
                "invalid_config",
                "run_conf.resume_from_checkpoint",
            )
        return str(last)
    if isinstance(value, str) and not Path(value).is_dir():
        raise FinetuningError(f"no checkpoint folder at '{value}'", "invalid_config", "run_conf.resume_from_checkpoint")
    return value


OOM_REMEDY = (
    "out of memory: lower batchsize_conf.max_per_device_train_batch_size (the total batch size stays the same: "
    "gradient accumulation makes up the difference), shorten sft_args.max_seq_length, set "
    "training_args.gradient_checkpointing: true, or load the model in 4-bit (quant_conf: {quantization_type: "
    "bits-and-bytes, load_in_4bit: true})"
)

# -- stopping on request: save a checkpoint at the next step boundary and exit --------------------------------------

STOP_SIGNAL = signal.SIGUSR1
"""Sent to the engine's process group (every rank under ``accelerate launch``) to ask a training run to save a
checkpoint at its next optimizer step boundary and stop. The worker sends it when it is shutting down or when a cancel
asks for a checkpoint; a person can send it too (``kill -USR1 <pid>``)."""

EXIT_STOPPED = 75  # EX_TEMPFAIL: stopped on request, resumable; the final status event names the checkpoint


class TrainingStopped(Exception):
    """Training stopped on request (:data:`STOP_SIGNAL`); ``checkpoint`` is the folder saved at the stop, if any."""

    def __init__(self, checkpoint: Path | None, step: int | None) -> None:
        where = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint"
        super().__init__(f"stopped on request at step {step}, {where}")
        self.checkpoint = checkpoint
        self.step = step


class StopRequested(TrainingStopped):
    """The stop came before training began: nothing to save."""

    def __init__(self) -> None:
        super().__init__(None, None)


class _StopState:
    """What the stop signal handler and the trainer callback share (one per process)."""

    requested = False
    training = False  # between train begin and train end: the callback carries the stop out at a step end
    finished = False  # training is over: the run completes (saving its result beats starting again)
    stopping_at: int | None = None  # the step at which the callback stopped training


STOP = _StopState()


def _on_stop_signal(signum: int, frame: Any) -> None:
    if STOP.requested:
        return  # repeated signals (the worker repeats it until the engine exits) change nothing
    STOP.requested = True
    if not STOP.training and not STOP.finished:
        logger.warning("stop requested before training began: stopping now")
        raise StopRequested
    logger.warning("stop requested: saving a checkpoint at the next step boundary")


def install_stop_handler() -> None:
    """Make :data:`STOP_SIGNAL` stop the run (main thread only; elsewhere a no-op)."""
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(STOP_SIGNAL, _on_stop_signal)


def ignore_stop_signal() -> None:
    """Once the run has its outcome: a stop signal repeated while the interpreter shuts down (which restores the
    default action, termination, for the signals Python handles) must not turn a clean exit into a kill."""
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(STOP_SIGNAL, signal.SIG_IGN)


def stop_callback() -> Any:
    """A Trainer callback that carries out a requested stop: at the next step end every rank agrees (an all-reduce
    when there are several, so that all stop at the same step) to save a checkpoint and end training."""
    return _stop_callback_class()()


@functools.cache
def _stop_callback_class() -> type[Any]:
    from transformers import TrainerCallback

    class StopCallback(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            STOP.training = True

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if _agreed(STOP.requested, args):
                STOP.stopping_at = state.global_step
                control.should_save = True
                control.should_training_stop = True

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            STOP.training = False
            STOP.finished = STOP.stopping_at is None

    return StopCallback


def _agreed(flag: bool, args: Any) -> bool:
    """``flag`` on any rank: a one-element all-reduce per step when training runs in several processes."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    import torch

    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=args.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def stopped_checkpoint(output_dir: Path) -> TrainingStopped | None:
    """After ``trainer.train()`` returned: the stop it carried out (with the checkpoint it saved), or None."""
    if STOP.stopping_at is None:
        return None
    checkpoint = output_dir / f"checkpoint-{STOP.stopping_at}"
    return TrainingStopped(checkpoint.absolute() if checkpoint.is_dir() else None, STOP.stopping_at)


def run_reporting_status(events: EventWriter, body: Callable[[], T]) -> T:
    """Run ``body`` and record the outcome as the final ``status`` event, with an error code people can act on."""
    import torch

    install_stop_handler()
    try:
        result = body()
    except TrainingStopped as exc:
        events.status(
            "cancelled",
            checkpoint=exc.checkpoint,
            metrics={"global_step": exc.step} if exc.step is not None else None,
        )
        raise
    except ConfigError as exc:
        issue = exc.issues[0] if exc.issues else None
        events.status("failed", error={"code": "invalid_config", "message": str(exc), "param": issue and issue.loc})
        raise
    except FinetuningError as exc:
        events.status("failed", error=exc.as_dict())
        raise
    except DataError as exc:
        events.status("failed", error={"code": "invalid_data", "message": str(exc), "param": None})
        raise
    except FileNotFoundError as exc:
        events.status("failed", error={"code": "data_not_found", "message": str(exc), "param": None})
        raise
    except torch.OutOfMemoryError as exc:
        events.status("failed", error={"code": "out_of_memory", "message": OOM_REMEDY, "param": None})
        raise FinetuningError(OOM_REMEDY, "out_of_memory") from exc
    except KeyboardInterrupt:
        events.status("cancelled")
        raise
    except Exception as exc:
        events.status("failed", error={"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"})
        raise
    finally:
        ignore_stop_signal()
    return result
