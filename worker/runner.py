"""A job's lifecycle on a worker: claim it, launch the engine (:mod:`worker.launch`, :mod:`worker.supervise`), store
its output lines and events while it runs (:mod:`worker.output`), heartbeat, carry out a cancel, and record the outcome
(:mod:`worker.outcome`) or hand the job back.

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

import logging
import shutil
import sys
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError

from jobcore.logs import job_context
from jobcore.models import TRAINING_KINDS, JobKind, JobStatus
from jobcore.secrets import SecretsUnavailable
from jobcore.settings import ServiceSettings
from worker import engine_env, shutdown, store
from worker.engine_env import MissingSecret
from worker.launch import EngineCommand, engine_command, ray_command, retry_config
from worker.outcome import Outcome, decide, error
from worker.output import EngineOutput
from worker.ray_job import RayJob, RayUnavailable, first_line, stop_request
from worker.supervise import EngineProcess, Stopping

logger = logging.getLogger(__name__)

POLL_S = 0.25  # how often output and events are collected and written
CANCEL_POLL_S = 1.0  # how often a cheap read checks for a cancel between lease renewals
MAX_BATCH = 500  # events per transaction
DRAIN_TIMEOUT_S = 5.0  # for the readers to reach the end of the pipes once the child has exited

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
        outcome = Outcome(JobStatus.FAILED, error("internal_error", f"worker error: {type(exc).__name__}: {exc}"))
    if outcome.hand_back:
        return run.hand_back(outcome)
    if not run.finish(outcome):
        return None
    log.info("finished: %s%s", outcome.status.value, f" ({outcome.error['code']})" if outcome.error else "")
    return outcome.status.value


class JobRun:
    """One attempt at one job, from preparing its folder to its outcome."""

    def __init__(self, settings: ServiceSettings, claim: store.Claim, log: JobLog) -> None:
        self.settings = settings
        self.claim = claim
        self.log = log
        self.job_dir = settings.job_folder(claim.job_id)
        self.events_file = self.job_dir / "events.jsonl"
        self.on_ray = claim.resolved.get("executor") == "ray"
        self.engine: EngineProcess | RayJob = self.ray_job() if self.on_ray else EngineProcess()
        self.output = EngineOutput(self.events_file, log)
        self.stopping = Stopping(
            self.engine,
            log,
            training=JobKind(claim.kind) in TRAINING_KINDS,
            shutdown_grace_seconds=settings.shutdown_grace_seconds,
            cancel_grace_seconds=settings.cancel_grace_seconds,
        )
        self.pending: list[store.Event] = []  # read, not yet stored
        self.ray_restarts = 0  # Ray Train's restarts of the group counted so far
        self.lease_valid_until = time.monotonic() + settings.lease_seconds

    # -- the run ---------------------------------------------------------------------------------------------------

    def execute(self) -> Outcome:
        """Run the job to its outcome; raises :class:`LeaseLost` when it must stop without recording one."""
        if self.claim.cancel_requested:
            return Outcome(JobStatus.CANCELLED)  # cancelled while it waited in the queue: nothing to run
        if shutdown.requested():
            return Outcome(JobStatus.QUEUED, hand_back=True)  # claimed as this worker began to stop: not started
        command = self.prepare()
        try:
            secret_env = self.secret_environment()
        except (MissingSecret, SecretsUnavailable) as exc:
            return Outcome(JobStatus.FAILED, error("secret_not_found", str(exc)))
        try:
            self.start(command, secret_env)
            return self.follow()
        except RayUnavailable as exc:
            return Outcome(JobStatus.FAILED, error("ray_unavailable", str(exc)))
        except (LeaseLost, SystemExit, KeyboardInterrupt):
            # another worker holds the job now, or this process is being ended (the job is then recovered): the worker
            # that takes it attaches to the Ray job
            if isinstance(self.engine, RayJob):
                self.engine.detach()
            raise
        finally:
            # whatever happened (an error, a lost lease), nothing the job started outlives this call, except a Ray
            # job left to the worker that takes the job over
            if self.engine.process is not None:
                self.engine.end()

    def ray_job(self) -> RayJob:
        """The Ray job of this attempt: the one an earlier attempt left running (attached to), or a new one."""
        if not self.settings.ray_address:
            raise RuntimeError("this job runs on a Ray cluster and this worker has no FINETUNING_RAY_ADDRESS")
        earlier = self.claim.ray_submission
        stored = self.with_db_retry(lambda: store.last_engine_seq(self.settings, self.claim.job_id))
        return RayJob(
            self.settings.ray_address,
            str(earlier["id"]) if earlier else f"finetuning-{self.claim.job_id}-{self.claim.attempt}",
            self.events_file,
            self.log,
            stop_location=stop_request(str(self.settings.job_outputs(self.claim.job_id))),
            # attached: its events are numbered as when it was submitted, and those stored are passed over
            seq_base=int(earlier.get("seq_base", 0)) if earlier else stored,
            skip_seq=stored if earlier else 0,
            attach=bool(earlier),
            unreachable_seconds=self.settings.ray_unreachable_seconds,
        )

    def prepare(self) -> EngineCommand:
        """The job folder with the command's files; the command to run there."""
        resolved = self.claim.resolved
        if isinstance(self.engine, RayJob):
            command = ray_command(
                JobKind(self.claim.kind),
                retry_config(JobKind(self.claim.kind), resolved["config"], self.claim.attempt, self.claim.checkpoint),
                job_id=self.claim.job_id,
                world_size=int(resolved.get("world_size", 1)),
                max_failures=self.settings.ray_max_failures,
                stop_file=self.engine.stop_location,
            )
            # the Ray job's working folder holds its files only (it is copied to the cluster)
            folder = self.ray_folder
            folder.mkdir(parents=True, exist_ok=True)
            for name, content in command.files.items():
                (folder / name).write_text(content, encoding="utf-8")
            return command
        command = engine_command(
            JobKind(self.claim.kind),
            retry_config(JobKind(self.claim.kind), resolved["config"], self.claim.attempt, self.claim.checkpoint),
            self.job_dir,
            outputs=str(self.settings.job_outputs(self.claim.job_id)),
            python=self.settings.engine_python or sys.executable,
            num_processes=int(resolved.get("num_processes", 1)),
            events_file=self.events_file,
            training_config=resolved.get("training_config"),
        )
        self.job_dir.mkdir(parents=True, exist_ok=True)
        for name, content in command.files.items():
            (self.job_dir / name).write_text(content, encoding="utf-8")
        return command

    def secret_environment(self) -> dict[str, str]:
        """The project's secrets this job refers to, as the engine's environment (:func:`worker.engine_env.secrets`)."""
        return engine_env.secrets(
            self.claim.resolved,
            lambda names: self.with_db_retry(lambda: store.job_secrets(self.settings, self.claim.project, names)),
        )

    @property
    def ray_folder(self) -> Path:
        return self.job_dir / "ray"

    def start(self, command: EngineCommand, secret_env: dict[str, str] | None = None) -> None:
        if isinstance(self.engine, RayJob):
            self.start_on_ray(command, secret_env or {})
            return
        earlier = self.output.events.skip_existing()
        if earlier:
            self.backfill(earlier)
        self.log.info("starting %s", " ".join(command.argv))
        process = self.engine.start(
            command.argv,
            self.job_dir,
            {**engine_env.for_process(self.settings, self.claim, self.job_dir), **(secret_env or {})},
        )
        self.output.read_pipes(process.stdout, process.stderr)
        self.pending.append(
            (
                store.PROCESS_EVENT,
                {"pid": process.pid, "pgid": self.engine.pgid, "attempt": self.claim.attempt, "argv": command.argv},
            )
        )
        self.flush()

    def start_on_ray(self, command: EngineCommand, secret_env: dict[str, str]) -> None:
        """Submit the Ray job (named on the job first) or attach to the one an earlier attempt left running."""
        assert isinstance(self.engine, RayJob)
        if not self.engine.attach:
            submission = {"id": self.engine.submission_id, "seq_base": self.engine.seq}
            if not self.with_db_retry(
                lambda: store.record_ray_submission(self.settings, self.claim.job_id, self.claim.attempt, submission)
            ):
                raise LeaseLost
            self.log.info("starting on Ray: %s", " ".join(command.argv))
        handle = self.engine.start(
            command.argv, self.ray_folder, {**engine_env.for_ray(self.settings, self.claim), **secret_env}
        )
        self.output.read_pipes(handle.stdout, handle.stderr)
        data = {**self.engine.describe(), "attempt": self.claim.attempt, "argv": command.argv}
        if self.engine.attach:
            data["attached"] = True
        self.pending.append((store.PROCESS_EVENT, data))
        self.flush()

    def backfill(self, earlier: bytes) -> None:
        """Queue the engine events an earlier attempt wrote but never stored (its worker died while the database was
        away, holding them in memory), in their order, before this attempt's own."""
        stored = self.with_db_retry(lambda: store.last_engine_seq(self.settings, self.claim.job_id))
        missing = self.output.events.earlier_events(earlier, stored)
        if missing:
            self.log.warning("storing %d events an earlier attempt wrote but did not store", len(missing))
            self.pending.extend(missing)

    def follow(self) -> Outcome:
        """Stream output and events, heartbeat and watch for a cancel until the child exits."""
        now = time.monotonic()
        next_renewal = now + self.settings.heartbeat_seconds
        next_cancel_check = now + CANCEL_POLL_S
        while True:
            exited = self.engine.exited()
            self.pending.extend(self.output.collect())
            self.flush()
            now = time.monotonic()
            if exited:
                break
            if shutdown.requested() and isinstance(self.engine, RayJob) and not self.stopping.cancelled:
                # the Ray job does not need this worker: it trains on while the job waits for the next worker, which
                # attaches to it
                self.log.warning("the worker is shutting down: handing the job back, its Ray job runs on")
                self.engine.detach()
                return Outcome(JobStatus.QUEUED, hand_back=True)
            if shutdown.requested() and self.stopping.reason is None and not self.stopping.cancelled:
                self.log.warning("the worker is shutting down: stopping the job to hand it back")
                self.stopping.stop("shutdown")
            self.stopping.tick(now, reported=self.output.events.final_status is not None)
            self.count_ray_restarts()
            if now >= next_renewal:
                next_renewal = now + self.settings.heartbeat_seconds
                next_cancel_check = now + CANCEL_POLL_S
                self.check(store.renew_lease, renewal=True)
            elif now >= next_cancel_check and not self.stopping.cancelled:
                next_cancel_check = now + CANCEL_POLL_S
                self.check(store.lease_state, renewal=False)
            time.sleep(POLL_S)
        # the child is gone; anything it left in its group goes too, so that the pipes reach their end
        returncode = self.engine.end()
        self.output.drain(DRAIN_TIMEOUT_S)
        self.pending.extend(self.output.collect())
        self.flush(final=True)
        self.count_ray_restarts()  # a restart read in the log's last lines
        if isinstance(self.engine, RayJob) and self.engine.unreachable is not None:
            return Outcome(JobStatus.FAILED, error("ray_unavailable", self.engine.unreachable), exit_code=returncode)
        stderr_tail = "\n".join(self.output.stderr_tail)
        if isinstance(self.engine, RayJob):
            stderr_tail = "\n".join([*self.output.last_lines, self.engine.last_words()])
        outcome = decide(
            self.output.events.final_status,
            returncode,
            stop_reason=self.stopping.reason,
            cancelled=self.stopping.cancelled,
            stderr_tail=stderr_tail,
        )
        if outcome.status == JobStatus.SUCCEEDED and returncode != 0:
            self.log.warning("the engine reported success but exited with %s", returncode)
        return outcome

    def count_ray_restarts(self) -> None:
        """A Ray Train restart (the group started again after a lost Ray worker or node) goes into the attempt's
        history as ``ray_restarts``."""
        if not isinstance(self.engine, RayJob) or self.engine.launches <= 1 + self.ray_restarts:
            return
        restarts = self.engine.launches - 1
        if not self.with_db_retry(
            lambda: store.record_ray_restarts(self.settings, self.claim.job_id, self.claim.attempt, restarts)
        ):
            raise LeaseLost
        self.ray_restarts = restarts

    def check(self, call: Callable[[ServiceSettings, str, int], store.LeaseState], *, renewal: bool) -> None:
        """Renew the lease (or just read it); stop on a lost lease, start the cancel when one is requested."""
        asked_at = time.monotonic()
        try:
            state = call(self.settings, self.claim.job_id, self.claim.attempt)
        except _UNREACHABLE as exc:
            # the database is unreachable: keep training while our lease is still valid, then stop (it may be
            # claimed by another worker after that, and two copies must never run)
            self.log.warning("lease check failed: %s", first_line(exc))
            if time.monotonic() > self.lease_valid_until:
                raise LeaseLost from exc
            return
        if not state.held:
            raise LeaseLost
        if renewal:
            self.lease_valid_until = asked_at + self.settings.lease_seconds
        if state.cancel_requested:
            self.stopping.cancel(checkpoint=state.cancel_checkpoint)

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
        elif outcome.status == JobStatus.SUCCEEDED:
            # everything the staging folder held is in the bucket now (the engine waited for its uploads)
            shutil.rmtree(self.job_dir / "staging", ignore_errors=True)
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

    def flush(self, *, final: bool = False) -> None:
        """Store what is pending, in order. While the database is away the events wait here (and the run goes on)
        until the lease would run out; at the end of the run they are retried until then."""
        while self.pending:
            batch = self.pending[:MAX_BATCH]
            try:
                held = store.append_events(self.settings, self.claim.job_id, self.claim.attempt, batch)
            except _UNREACHABLE as exc:
                if not final:
                    self.log.warning("storing %d events failed, will retry: %s", len(self.pending), first_line(exc))
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
                self.log.warning("database unavailable, retrying: %s", first_line(exc))
                time.sleep(1.0)
