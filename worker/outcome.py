"""A run's outcome, decided from what the engine said and how it ended: its final ``status`` event (if it wrote one),
its return code, whether it was asked to stop (a cancel, this worker shutting down) and the last lines of its stderr.
A pure function: no process, no database."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any, Literal

from finetuning.contract import OOM_REMEDY, RunStatus
from jobcore.models import JobStatus

MAX_MESSAGE_CHARS = 4_000

StopReason = Literal["shutdown", "cancel"]
_RUN_STATUSES = frozenset(RunStatus)


@dataclass
class Outcome:
    status: JobStatus
    error: dict[str, Any] | None = None
    artifacts: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    exit_code: int | None = None
    checkpoint: str | None = None  # saved when the run was stopped on request
    hand_back: bool = False  # this worker is shutting down: the job goes back to the queue


def error(code: str, message: str, param: str | None = None) -> dict[str, Any]:
    """An error as the job stores it, its message cut to what a job row and an event hold."""
    return {"code": code, "message": message[:MAX_MESSAGE_CHARS], "param": param}


def decide(
    final: dict[str, Any] | None,
    returncode: int,
    *,
    stop_reason: StopReason | None = None,
    cancelled: bool = False,
    stderr_tail: str = "",
) -> Outcome:
    """The job's outcome. ``final`` is the engine's last ``status`` event, ``stop_reason`` why the engine was asked to
    stop (None: it was not), ``cancelled`` whether a cancel is being carried out."""
    checkpoint = final.get("checkpoint") if final is not None else None
    checkpoint = checkpoint if isinstance(checkpoint, str) and checkpoint else None
    asked = cancelled or stop_reason is not None
    if stop_reason == "shutdown" and not (final is not None and returncode == 0):
        # whatever the engine made of the stop (saved and exited 75, killed, a failure the stop caused): the job goes
        # back to the queue; a run that really fails fails again on the next worker
        return Outcome(JobStatus.QUEUED, exit_code=returncode, checkpoint=checkpoint, hand_back=True)
    if final is not None and (not asked or returncode == 0):
        reported = final.get("status")
        status = JobStatus(reported) if isinstance(reported, str) and reported in _RUN_STATUSES else JobStatus.FAILED
        failure = final.get("error")
        if status == JobStatus.FAILED and not isinstance(failure, dict):
            failure = error("internal_error", f"the engine reported failure without an error (exit {returncode})")
        return Outcome(
            status,
            failure if status == JobStatus.FAILED else None,
            _dict_or_none(final.get("artifacts")),
            _dict_or_none(final.get("metrics")),
            returncode,
        )
    if asked:
        return Outcome(JobStatus.CANCELLED, exit_code=returncode, checkpoint=checkpoint)
    if returncode in (-signal.SIGKILL, 128 + signal.SIGKILL):
        message = (
            f"the engine was killed by SIGKILL (exit {returncode}), most likely by the kernel's out-of-memory "
            f"killer (host memory). {OOM_REMEDY[0].upper()}{OOM_REMEDY[1:]}; or use a machine with more memory"
        )
        return Outcome(JobStatus.FAILED, error("out_of_memory", _with_tail(message, stderr_tail)), exit_code=returncode)
    how = f"was killed by {_signal_name(-returncode)}" if returncode < 0 else f"exited with {returncode}"
    message = f"the engine {how} without reporting an outcome"
    return Outcome(JobStatus.FAILED, error("engine_crashed", _with_tail(message, stderr_tail)), exit_code=returncode)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _dict_or_none(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _with_tail(message: str, tail: str) -> str:
    """``message`` and as much of the end of ``tail`` (the last stderr lines) as fits in an error message."""
    if not tail:
        return message
    head = f"{message}; last output:\n"
    room = max(MAX_MESSAGE_CHARS - len(head), 0)
    return head + tail[-room:]
