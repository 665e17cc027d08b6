"""The engine as a process: started in a process group of its own that dies with the worker, signalled as a group,
reaped only once the group is gone; and how it is stopped (a checkpoint first for a training run, then a kill after
the grace period)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Protocol

from finetuning.contract import STOP_SIGNAL
from finetuning.subprocesses import die_with_parent
from worker.outcome import StopReason

STOP_REPEAT_S = 1.0  # how often the stop signal is sent again until the engine exits


class EngineProcess:
    """One engine run. The child is reaped only after its group was killed: until then its zombie holds the group id,
    so a signal to the group can never reach an unrelated group that reused the number."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.pgid: int | None = None
        self.reaped = False

    def start(self, argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a cancel reaches every process it starts
            # the engine's group ignores the stop signal until the engine installs its handler: an early stop is
            # repeated, and a launcher (accelerate launch) is not killed by it
            preexec_fn=die_with_parent(ignore=(STOP_SIGNAL,)),
        )
        self.pgid = self.process.pid  # a new session's leader: its pid is the group id
        return self.process

    def exited(self) -> bool:
        """Whether the child has exited, without reaping it (``WNOWAIT``)."""
        if self.process is None:
            return True
        try:
            return os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def signal(self, sig: signal.Signals) -> None:
        if self.pgid is None:
            return
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            pass  # the group is empty: nothing left to stop

    def end(self) -> int:
        """Kill whatever is left in the group (so that the pipes reach their end), reap the child; its return code."""
        assert self.process is not None
        if not self.reaped:
            self.signal(signal.SIGKILL)
            self.process.wait()
            self.reaped = True
        return self.process.returncode


class Signalled(Protocol):
    """What :class:`Stopping` needs of a run: a local process group, or a Ray job (:mod:`worker.ray_job`)."""

    pgid: int | None

    def signal(self, sig: signal.Signals) -> None: ...


class Stopping:
    """Asking the engine to stop, and making sure it does. A training run gets :data:`STOP_SIGNAL` (saves a
    checkpoint at its next step; repeated each second until it exits, as it ignores the signal until its handler is
    installed), other jobs ``SIGTERM``; both are killed after their grace period."""

    def __init__(
        self,
        engine: Signalled,
        log: logging.LoggerAdapter[logging.Logger],
        *,
        training: bool,
        shutdown_grace_seconds: float,
        cancel_grace_seconds: float,
    ) -> None:
        self.engine = engine
        self.log = log
        self.training = training
        self.shutdown_grace_seconds = shutdown_grace_seconds
        self.cancel_grace_seconds = cancel_grace_seconds
        self.reason: StopReason | None = None  # the engine was asked to stop
        self.cancelled = False  # a cancel is being carried out (SIGTERM, or a stop with checkpoint)
        self.kill_at: float | None = None
        self.sent_at = 0.0

    def stop(self, reason: StopReason) -> None:
        """A checkpoint first for a training run (killed after ``shutdown_grace_seconds``); others just end
        (``SIGTERM``, killed after ``cancel_grace_seconds``)."""
        self.reason = reason
        now = time.monotonic()
        if self.training:
            self.log.info("%s: %s to process group %s", reason, STOP_SIGNAL.name, self.engine.pgid)
            self.engine.signal(STOP_SIGNAL)
            self.sent_at = now
            self.kill_at = now + self.shutdown_grace_seconds
        else:
            self.log.info("%s: SIGTERM to process group %s", reason, self.engine.pgid)
            self.engine.signal(signal.SIGTERM)
            self.kill_at = now + self.cancel_grace_seconds

    def cancel(self, *, checkpoint: bool) -> None:
        """A cancel: with ``checkpoint`` a training run stops as at a shutdown, saving one; otherwise ``SIGTERM`` and
        a kill after ``cancel_grace_seconds``."""
        if self.cancelled:
            return
        self.cancelled = True
        if checkpoint and self.training:
            self.log.info("cancel with checkpoint requested")
            if self.reason is None:
                self.stop("cancel")
            return
        self.log.info("cancel requested: SIGTERM to process group %s", self.engine.pgid)
        self.engine.signal(signal.SIGTERM)
        self.kill_at = time.monotonic() + self.cancel_grace_seconds

    def tick(self, now: float, *, reported: bool) -> None:
        """Repeat the stop signal until the engine has ``reported`` its outcome; kill it once its grace is over."""
        if self.kill_at is None:
            return
        if now >= self.kill_at:
            self.log.warning("still running after the stop's grace period: SIGKILL")
            self.engine.signal(signal.SIGKILL)
            self.kill_at = float("inf")
        elif self.training and self.reason is not None and not reported and now - self.sent_at >= STOP_REPEAT_S:
            self.engine.signal(STOP_SIGNAL)  # the engine may not have had its handler when the first one came
            self.sent_at = now
