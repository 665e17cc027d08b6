"""Stopping a training run on request (:data:`finetuning.contract.STOP_SIGNAL`): the signal handler, and the trainer
callback that saves a checkpoint at the next optimizer step boundary, every rank at the same step, and ends training."""

from __future__ import annotations

import functools
import logging
import signal
from pathlib import Path
from typing import Any

from finetuning.contract import STOP_SIGNAL

logger = logging.getLogger(__name__)


class TrainingStopped(Exception):
    """Training stopped on request (:data:`STOP_SIGNAL`); ``checkpoint`` is the folder saved at the stop, if any."""

    def __init__(self, checkpoint: Path | str | None, step: int | None) -> None:
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
