"""Run one job: claim it, run the engine CLI as a child process in its own process group, stream its output lines and
events into the database while it runs, heartbeat, carry out a cancel, and record the outcome.

What is stored (``job_events``, in arrival order):
- ``log`` ``{"stream": "stdout"|"stderr", "line": str}``: one per line the child printed. A carriage return redraws
  the line as a terminal would, so a progress bar is stored as its last state, not as every redraw.
- the engine's events (docs/events.md) under their own type, the whole event as data (``v``, ``seq``, ``time``, ...).
  The engine's own ``log`` events share the type ``log`` and carry ``level`` and ``message`` instead of ``line``.
- ``job`` ``{"status", "attempt", ...}``: the claim (``worker``) and the outcome (``error``, ``exit_code``,
  ``checkpoint``); a hand-back is ``{"status": "queued", "attempt", "reason": "worker_shutdown", "checkpoint"}``.
- ``process`` ``{"pid", "pgid", "attempt", "argv"}``: the child once it started.

Stopping with a checkpoint: when this worker is shutting down (:mod:`worker.shutdown`) or a cancel asks for a
checkpoint, a training engine gets ``SIGUSR1`` (repeated each second until it exits: it ignores the signal until its
handler is installed, as does ``accelerate launch``), saves a checkpoint at its next step and exits 75 with a final
``status`` event naming it; after ``shutdown_grace_seconds`` it is killed. Other jobs get ``SIGTERM`` (they start over).
"""

from __future__ import annotations

import codecs
import collections
import heapq
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError

from finetuning.contract import EVENTS_VERSION, OOM_REMEDY, STOP_SIGNAL, EventType
from jobcore.logs import job_context
from jobcore.models import TRAINING_KINDS, JobKind, JobStatus
from jobcore.process import die_with_parent
from jobcore.settings import ServiceSettings
from worker import shutdown, store
from worker.launch import EngineCommand, engine_command, retry_config

logger = logging.getLogger(__name__)

POLL_S = 0.25  # how often output and events are collected and written
CANCEL_POLL_S = 1.0  # how often a cheap read checks for a cancel between lease renewals
MAX_BATCH = 500  # events per transaction
MAX_LINE_CHARS = 16_000  # longer lines are cut (a line without newline is broken there)
STDERR_TAIL_LINES = 20  # kept for the message of a crash
MAX_MESSAGE_CHARS = 4_000
DRAIN_TIMEOUT_S = 5.0  # for the readers to reach the end of the pipes once the child has exited
STOP_REPEAT_S = 1.0  # how often the stop signal is sent again until the engine exits

# The service's own settings (database and broker URLs among them) are not the engine's business: user-supplied code
# runs in the child (trust_remote_code, chat templates), so they are not passed on.
_SERVICE_ENV = {f"FINETUNING_{name}".upper() for name in ServiceSettings.model_fields}

T = TypeVar("T")

# The database errors that mean "unreachable for now" (a restart, a network blip): worth waiting out within our lease.
# Any other database error is a bug, and fails the job.
_UNREACHABLE = (OperationalError, InterfaceError)


class JobLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every line with the job id (text logs) and sets ``job_id`` on its records (JSON logs; the records of
    other loggers get it from :func:`jobcore.logs.job_context`, which :func:`run_job` sets)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        job_id = self.extra["job_id"] if self.extra else "?"
        kwargs["extra"] = {"job_id": job_id, **(kwargs.get("extra") or {})}
        return f"[job {job_id}] {msg}", kwargs


class LeaseLost(Exception):
    """This attempt no longer holds the job: another worker claimed it after our lease ran out."""


class MissingInput(Exception):
    """A folder the job copies before it starts (an adapter to convert) is not there."""

    def __init__(self, name: str, source: str) -> None:
        super().__init__(f"'{source}' does not exist (any more)")
        self.name = name


@dataclass
class Outcome:
    status: JobStatus
    error: dict[str, Any] | None = None
    artifacts: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    exit_code: int | None = None
    checkpoint: str | None = None  # saved when the run was stopped on request
    hand_back: bool = False  # this worker is shutting down: the job goes back to the queue


def run_job(settings: ServiceSettings, job_id: str, worker_name: str) -> str | None:
    """Claim and run ``job_id``; return its final status, or None when this worker did not run it to the end (not
    claimable: a redelivered message, a finished job; or the lease was lost). Every log record emitted meanwhile
    carries the job id."""
    with job_context(job_id):
        return _run_job(settings, job_id, worker_name)


def _run_job(settings: ServiceSettings, job_id: str, worker_name: str) -> str | None:
    log = JobLog(logger, {"job_id": job_id})
    if shutdown.requested():
        # a message this stopping worker still took (its consumer was closing): leave the job to another worker
        # without claiming it, so that its attempts and history do not grow
        from worker.dispatch import enqueue_job

        log.info("this worker is stopping: the job's message is sent back without a claim")
        try:
            queue = store.job_queue(settings, job_id)
            if queue is not None:
                enqueue_job(settings, job_id, queue)
        except Exception:  # the broker or the database is away: recovery sends queued jobs without a message again
            log.warning("could not send the message back", exc_info=True)
        return None
    claim = store.claim_job(settings, job_id, worker_name)
    if claim is None:
        log.info("not claimable (finished, cancelled or running elsewhere): message dropped")
        return None
    log.info("claimed by %s, attempt %d", worker_name, claim.attempt)
    run = JobRun(settings, claim, log)
    try:
        outcome = run.execute()
    except LeaseLost:
        log.warning("lease lost: another worker holds the job now; stopped without recording an outcome")
        return None
    except Exception as exc:
        # a bug or a dead database here must not leave the job running until its lease runs out
        log.exception("worker error")
        outcome = Outcome(JobStatus.FAILED, _error("internal_error", f"worker error: {type(exc).__name__}: {exc}"))
    if outcome.hand_back:
        return run.hand_back(outcome)
    if not run.finish(outcome):
        return None
    log.info("finished: %s%s", outcome.status.value, f" ({outcome.error['code']})" if outcome.error else "")
    return outcome.status.value


def _error(code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message[:MAX_MESSAGE_CHARS], "param": param}


class JobRun:
    """One attempt at one job, from preparing its folder to its outcome."""

    def __init__(self, settings: ServiceSettings, claim: store.Claim, log: JobLog) -> None:
        self.settings = settings
        self.claim = claim
        self.log = log
        self.job_dir = settings.artifact_root / claim.job_id
        self.events_file = self.job_dir / "events.jsonl"
        self.process: subprocess.Popen[bytes] | None = None
        self.pgid: int | None = None
        # the child is reaped only after its group was killed: until then its zombie holds the group id, so a
        # signal to the group can never reach an unrelated group that reused the number
        self.reaped = False
        self.pending: list[store.Event] = []  # read, not yet stored
        self.output: queue.Queue[tuple[str, str | None, float]] = queue.Queue()
        self.readers: list[threading.Thread] = []
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.events_offset = 0
        self.final_status: dict[str, Any] | None = None
        self.cancel_kill_at: float | None = None  # set once the cancel's SIGTERM went out
        self.cancelled = False  # a cancel is being carried out (SIGTERM, or a stop with checkpoint)
        self.training = JobKind(claim.kind) in TRAINING_KINDS
        self.stop_reason: str | None = None  # "shutdown" or "cancel": the engine was asked to stop (SIGUSR1/SIGTERM)
        self.stop_kill_at: float | None = None  # then killed at this time
        self.stop_sent_at = 0.0
        self.lease_valid_until = time.monotonic() + settings.lease_seconds
        self.warned_versions: set[Any] = set()

    # -- the run ---------------------------------------------------------------------------------------------------

    def execute(self) -> Outcome:
        """Run the job to its outcome; raises :class:`LeaseLost` when it must stop without recording one."""
        if self.claim.cancel_requested:
            return Outcome(JobStatus.CANCELLED)  # cancelled while it waited in the queue: nothing to run
        if shutdown.requested():
            return Outcome(JobStatus.QUEUED, hand_back=True)  # claimed as this worker began to stop: not started
        try:
            command = self.prepare()
        except MissingInput as exc:
            return Outcome(JobStatus.FAILED, _error("model_not_found", f"{exc.name}: {exc}", exc.name))
        try:
            self.start(command)
            return self.follow()
        finally:
            # whatever happened (an error, a lost lease), nothing the job started outlives this call
            if self.process is not None and not self.reaped:
                self.signal_group(signal.SIGKILL)
                self.process.wait()
                self.reaped = True

    def prepare(self) -> EngineCommand:
        """The job folder with the command's files and copies; the command to run there."""
        resolved = self.claim.resolved
        command = engine_command(
            JobKind(self.claim.kind),
            retry_config(JobKind(self.claim.kind), resolved["config"], self.claim.attempt, self.claim.checkpoint),
            self.job_dir,
            python=self.settings.engine_python or sys.executable,
            num_processes=int(resolved.get("num_processes", 1)),
            events_file=self.events_file,
            training_config=resolved.get("training_config"),
        )
        self.job_dir.mkdir(parents=True, exist_ok=True)
        for name, content in command.files.items():
            (self.job_dir / name).write_text(content, encoding="utf-8")
        for name, source in command.copies.items():
            target = self.job_dir / name
            if target.exists():
                shutil.rmtree(target)  # left by an earlier attempt: start from a fresh copy
            if not Path(source).exists():
                raise MissingInput(name, source)
            shutil.copytree(source, target)
        return command

    def child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k.upper() not in _SERVICE_ENV}
        env["PYTHONUNBUFFERED"] = "1"  # lines arrive as they are printed, not when a buffer fills
        # the engine tags its events and its MLflow run with the job and this run of it (finetuning.settings)
        env["FINETUNING_JOB_ID"] = self.claim.job_id
        env["FINETUNING_JOB_ATTEMPT"] = str(self.claim.attempt)
        config = self.claim.resolved.get("config") or {}
        if self.settings.mlflow_tracking_uri and not config.get("tracking"):
            env["MLFLOW_TRACKING_URI"] = self.settings.mlflow_tracking_uri
        if self.settings.engine_python is None:
            # the worker's own interpreter runs the engine: make it import the same engine code as the worker
            import finetuning

            root = str(Path(finetuning.__file__).resolve().parents[1])
            env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        return env

    def start(self, command: EngineCommand) -> None:
        # a retry in the same folder appends to the events file: only this attempt's events (after the last complete
        # line; a torn last line is cut off by the engine when it starts) are ours
        if self.events_file.exists():
            content = self.events_file.read_bytes()
            self.events_offset = content.rfind(b"\n") + 1
            self.backfill(content[: self.events_offset])
        self.log.info("starting %s", " ".join(command.argv))
        self.process = subprocess.Popen(
            command.argv,
            cwd=self.job_dir,
            env=self.child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a cancel reaches every process it starts
            # the engine's group ignores the stop signal until the engine installs its handler: an early stop is
            # repeated, and a launcher (accelerate launch) is not killed by it
            preexec_fn=die_with_parent(ignore=(STOP_SIGNAL,)),
        )
        self.pgid = self.process.pid  # a new session's leader: its pid is the group id
        for name, pipe in (("stdout", self.process.stdout), ("stderr", self.process.stderr)):
            assert pipe is not None
            reader = threading.Thread(target=_read_lines, args=(name, pipe, self.output), daemon=True)
            reader.start()
            self.readers.append(reader)
        self.pending.append(
            (
                store.PROCESS_EVENT,
                {"pid": self.process.pid, "pgid": self.pgid, "attempt": self.claim.attempt, "argv": command.argv},
            )
        )
        self.flush()

    def backfill(self, earlier: bytes) -> None:
        """Queue the engine events an earlier attempt wrote but never stored (its worker died while the database was
        away, holding them in memory), in their order, before this attempt's own."""
        stored = self.with_db_retry(lambda: store.last_engine_seq(self.settings, self.claim.job_id))
        final_status = self.final_status  # an earlier attempt's outcome is not this one's
        missing: list[store.Event] = []
        for raw in earlier.splitlines():
            event = self.parse_event(raw)
            if event is not None and isinstance(event.get("seq"), int) and event["seq"] > stored:
                missing.append((str(event["type"])[:32], event))
        self.final_status = final_status
        if missing:
            self.log.warning("storing %d events an earlier attempt wrote but did not store", len(missing))
            self.pending.extend(missing)

    def follow(self) -> Outcome:
        """Stream output and events, heartbeat and watch for a cancel until the child exits."""
        process = self.process
        assert process is not None
        now = time.monotonic()
        next_renewal = now + self.settings.heartbeat_seconds
        next_cancel_check = now + CANCEL_POLL_S
        while True:
            exited = _exited(process.pid)
            self.collect()
            self.flush()
            now = time.monotonic()
            if exited:
                break
            if shutdown.requested() and self.stop_reason is None and not self.cancelled:
                self.log.warning("the worker is shutting down: stopping the job to hand it back")
                self.stop("shutdown")
            self.repeat_stop(now)
            if now >= next_renewal:
                next_renewal = now + self.settings.heartbeat_seconds
                next_cancel_check = now + CANCEL_POLL_S
                self.check(store.renew_lease, renewal=True)
            elif now >= next_cancel_check and not self.cancelled:
                next_cancel_check = now + CANCEL_POLL_S
                self.check(store.lease_state, renewal=False)
            if self.cancel_kill_at is not None and now >= self.cancel_kill_at:
                self.log.warning("still running %.1f s after SIGTERM: SIGKILL", self.settings.cancel_grace_seconds)
                self.signal_group(signal.SIGKILL)
                self.cancel_kill_at = float("inf")
            time.sleep(POLL_S)
        # the child is gone; anything it left in its group goes too, so that the pipes reach their end
        self.signal_group(signal.SIGKILL)
        process.wait()
        self.reaped = True
        for reader in self.readers:
            reader.join(timeout=DRAIN_TIMEOUT_S)
        self.collect()
        self.flush(final=True)
        return self.outcome(process.returncode)

    def check(self, call: Callable[[ServiceSettings, str, int], store.LeaseState], *, renewal: bool) -> None:
        """Renew the lease (or just read it); stop on a lost lease, start the cancel when one is requested."""
        asked_at = time.monotonic()
        try:
            state = call(self.settings, self.claim.job_id, self.claim.attempt)
        except _UNREACHABLE as exc:
            # the database is unreachable: keep training while our lease is still valid, then stop (it may be
            # claimed by another worker after that, and two copies must never run)
            self.log.warning("lease check failed: %s", _first_line(exc))
            if time.monotonic() > self.lease_valid_until:
                raise LeaseLost from exc
            return
        if not state.held:
            raise LeaseLost
        if renewal:
            self.lease_valid_until = asked_at + self.settings.lease_seconds
        if state.cancel_requested and not self.cancelled:
            self.cancelled = True
            if state.cancel_checkpoint and self.training:
                self.log.info("cancel with checkpoint requested")
                if self.stop_reason is None:
                    self.stop("cancel")
                return
            self.log.info("cancel requested: SIGTERM to process group %s", self.pgid)
            self.signal_group(signal.SIGTERM)
            self.cancel_kill_at = time.monotonic() + self.settings.cancel_grace_seconds

    def stop(self, reason: str) -> None:
        """Ask the engine to stop: a training run saves a checkpoint first (``SIGUSR1``), other jobs just end
        (``SIGTERM``); killed after ``shutdown_grace_seconds`` (training) or ``cancel_grace_seconds``."""
        self.stop_reason = reason
        now = time.monotonic()
        if self.training:
            self.log.info("%s: %s to process group %s", reason, STOP_SIGNAL.name, self.pgid)
            self.signal_group(STOP_SIGNAL)
            self.stop_sent_at = now
            self.stop_kill_at = now + self.settings.shutdown_grace_seconds
        else:
            self.log.info("%s: SIGTERM to process group %s", reason, self.pgid)
            self.signal_group(signal.SIGTERM)
            self.stop_kill_at = now + self.settings.cancel_grace_seconds

    def repeat_stop(self, now: float) -> None:
        if self.stop_kill_at is None:
            return
        if now >= self.stop_kill_at:
            self.log.warning("still running after the stop's grace period: SIGKILL")
            self.signal_group(signal.SIGKILL)
            self.stop_kill_at = float("inf")
        elif self.training and self.final_status is None and now - self.stop_sent_at >= STOP_REPEAT_S:
            self.signal_group(STOP_SIGNAL)  # the engine may not have had its handler when the first one came
            self.stop_sent_at = now

    def outcome(self, returncode: int) -> Outcome:
        final = self.final_status
        checkpoint = final.get("checkpoint") if final is not None else None
        checkpoint = checkpoint if isinstance(checkpoint, str) and checkpoint else None
        asked = self.cancelled or self.stop_reason is not None
        if self.stop_reason == "shutdown" and not (final is not None and returncode == 0):
            # whatever the engine made of the stop (saved and exited 75, killed, a failure the stop caused): the job
            # goes back to the queue; a run that really fails fails again on the next worker
            return Outcome(JobStatus.QUEUED, exit_code=returncode, checkpoint=checkpoint, hand_back=True)
        if final is not None and (not asked or returncode == 0):
            reported = final.get("status")
            status = (
                JobStatus(reported) if isinstance(reported, str) and reported in _FINAL_STATUSES else JobStatus.FAILED
            )
            error = final.get("error")
            if status == JobStatus.FAILED and not isinstance(error, dict):
                error = _error("internal_error", f"the engine reported failure without an error (exit {returncode})")
            if returncode != 0 and status == JobStatus.SUCCEEDED:
                self.log.warning("the engine reported success but exited with %s", returncode)
            return Outcome(
                status,
                error if status == JobStatus.FAILED else None,
                _dict_or_none(final.get("artifacts")),
                _dict_or_none(final.get("metrics")),
                returncode,
            )
        if asked:
            return Outcome(JobStatus.CANCELLED, exit_code=returncode, checkpoint=checkpoint)
        tail = "\n".join(self.stderr_tail)
        if returncode in (-signal.SIGKILL, 128 + signal.SIGKILL):
            message = (
                f"the engine was killed by SIGKILL (exit {returncode}), most likely by the kernel's out-of-memory "
                f"killer (host memory). {OOM_REMEDY[0].upper()}{OOM_REMEDY[1:]}; or use a machine with more memory"
            )
            return Outcome(JobStatus.FAILED, _error("out_of_memory", _with_tail(message, tail)), exit_code=returncode)
        how = f"was killed by {_signal_name(-returncode)}" if returncode < 0 else f"exited with {returncode}"
        message = f"the engine {how} without reporting an outcome"
        return Outcome(JobStatus.FAILED, _error("engine_crashed", _with_tail(message, tail)), exit_code=returncode)

    def finish(self, outcome: Outcome) -> bool:
        """Record the outcome (retrying while the database is away and our lease lasts); False when we lost the job."""
        try:
            done = self.with_db_retry(
                lambda: store.finish_job(
                    self.settings,
                    self.claim.job_id,
                    self.claim.attempt,
                    outcome.status,
                    outcome.error,
                    outcome.artifacts,
                    outcome.metrics,
                    exit_code=outcome.exit_code,
                    checkpoint=outcome.checkpoint,
                )
            )
        except LeaseLost:
            done = False
        if not done:
            self.log.warning("lease lost before the outcome (%s) was recorded", outcome.status.value)
        return done

    def hand_back(self, outcome: Outcome) -> str | None:
        """Give the job back to the queue (this worker is shutting down) and send its message again at once, so
        that another worker resumes it from ``outcome.checkpoint``; None when we lost the job meanwhile."""
        try:
            status = self.with_db_retry(
                lambda: store.hand_back(self.settings, self.claim.job_id, self.claim.attempt, outcome.checkpoint)
            )
        except LeaseLost:
            status = None
        if status is None:
            self.log.warning("lease lost before the job could be handed back")
            return None
        self.log.warning("handed back (%s), checkpoint %s", status, outcome.checkpoint or "none")
        if status == JobStatus.QUEUED.value:
            from worker.dispatch import enqueue_job

            try:
                enqueue_job(self.settings, self.claim.job_id, self.claim.queue)
            except Exception:  # the broker is away: recovery sends queued jobs without a message again
                self.log.warning("could not send the handed-back job again", exc_info=True)
        return status

    # -- streams ---------------------------------------------------------------------------------------------------

    def collect(self) -> None:
        """Move the lines the readers have queued and the new complete lines of the events file to ``pending``.

        Both sources are read once per tick; within a tick they are merged by time (a line's arrival, an event's
        ``time``), so that a line printed after an event is stored after it."""
        lines: list[tuple[float, store.Event]] = []
        while True:
            try:
                stream, line, at = self.output.get_nowait()
            except queue.Empty:
                break
            if line is None:
                continue  # a reader reached the end of its pipe
            if stream == "stderr":
                self.stderr_tail.append(line)
            lines.append((at, ("log", {"stream": stream, "line": line})))
        read_at = time.time()
        events = [(_event_time(data, read_at), (kind, data)) for kind, data in self.read_events()]
        # a merge, not a sort: each source keeps its own order whatever its clock did
        self.pending.extend(event for _, event in heapq.merge(lines, events, key=lambda item: item[0]))

    def read_events(self) -> list[store.Event]:
        try:
            with self.events_file.open("rb") as f:
                size = f.seek(0, os.SEEK_END)
                if size < self.events_offset:
                    self.log.warning(
                        "events file shrank from %d to %d bytes: reading on from its end", self.events_offset, size
                    )
                    self.events_offset = size
                f.seek(self.events_offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n") + 1  # a line without its newline is still being written
        if end == 0:
            return []
        self.events_offset += end
        events: list[store.Event] = []
        for raw in chunk[:end].splitlines():
            event = self.parse_event(raw)
            if event is not None:
                events.append((str(event["type"])[:32], event))
        return events

    def parse_event(self, raw: bytes) -> dict[str, Any] | None:
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            return None
        try:
            # Postgres' jsonb takes no NaN/Infinity: keep them as text (the engine writes them so already)
            event = _clean(json.loads(text, parse_constant=str))
        except json.JSONDecodeError:
            self.log.warning("skipped an events line that is not JSON: %.200s", text)
            return None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            self.log.warning("skipped an events line without a type: %.200s", text)
            return None
        version = event.get("v")
        if version != EVENTS_VERSION:
            if version not in self.warned_versions:
                self.warned_versions.add(version)
                self.log.warning("events of format version %r are stored but not interpreted", version)
        elif event["type"] == EventType.STATUS:
            self.final_status = event
        return event

    def flush(self, *, final: bool = False) -> None:
        """Store what is pending, in order. While the database is away the events wait here (and the run goes on)
        until the lease would run out; at the end of the run they are retried until then."""
        while self.pending:
            batch = self.pending[:MAX_BATCH]
            try:
                held = store.append_events(self.settings, self.claim.job_id, self.claim.attempt, batch)
            except _UNREACHABLE as exc:
                if not final:
                    self.log.warning("storing %d events failed, will retry: %s", len(self.pending), _first_line(exc))
                    if time.monotonic() > self.lease_valid_until:
                        raise LeaseLost from exc
                    return
                if time.monotonic() > self.lease_valid_until:
                    raise LeaseLost from exc
                time.sleep(1.0)
                continue
            if not held:
                raise LeaseLost
            del self.pending[: len(batch)]

    def with_db_retry(self, call: Callable[[], T]) -> T:
        while True:
            try:
                return call()
            except _UNREACHABLE as exc:
                if time.monotonic() > self.lease_valid_until:
                    raise LeaseLost from exc
                self.log.warning("database unavailable, retrying: %s", _first_line(exc))
                time.sleep(1.0)

    # -- the process group -----------------------------------------------------------------------------------------

    def signal_group(self, sig: signal.Signals) -> None:
        if self.pgid is None:
            return
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            pass  # the group is empty: nothing left to stop


_FINAL_STATUSES = {s.value for s in JobStatus if s.terminal}


def _exited(pid: int) -> bool:
    """Whether the child has exited, without reaping it (``WNOWAIT``)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


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


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _clean(value: Any) -> Any:
    """``value`` with every string storable in Postgres' jsonb: no NUL character, no lone surrogate (both can come
    from ``\\u`` escapes)."""
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _event_time(event: dict[str, Any], default: float) -> float:
    try:
        return datetime.fromisoformat(str(event["time"])).timestamp()
    except (KeyError, ValueError):
        return default


def _read_lines(stream: str, pipe: IO[bytes], out: queue.Queue[tuple[str, str | None, float]]) -> None:
    """Reader thread: split a pipe into lines as a terminal shows them, put ``(stream, line, arrival time)`` on
    ``out``, then ``(stream, None, ...)`` at its end. Blocking reads are fine here: each pipe has its own thread."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    fd = pipe.fileno()
    try:
        while True:
            chunk = os.read(fd, 65536)
            text = pending + decoder.decode(chunk, final=not chunk)
            *lines, pending = text.split("\n")
            for line in lines:
                out.put((stream, _visible(line), time.time()))
            pending = _compact(pending)
            if len(pending) > MAX_LINE_CHARS:
                out.put((stream, _visible(pending), time.time()))
                pending = ""
            if not chunk:
                break
        if pending.strip("\r"):
            out.put((stream, _visible(pending), time.time()))
    except OSError:
        pass  # the pipe was closed under us
    finally:
        pipe.close()
        out.put((stream, None, time.time()))


def _visible(line: str) -> str:
    """What a terminal shows of ``line``: the text after its last carriage return (a redrawn progress bar), without
    NUL characters (Postgres' jsonb rejects them), cut at ``MAX_LINE_CHARS``."""
    parts = [p for p in line.split("\r") if p]
    text = parts[-1] if parts else ""
    return text.replace("\x00", "\ufffd")[:MAX_LINE_CHARS]


def _compact(pending: str) -> str:
    # an unfinished line redrawn many times (a progress bar) keeps only its latest state, so memory stays bounded
    if pending.count("\r") < 2:
        return pending
    return _visible(pending) + ("\r" if pending.endswith("\r") else "")
