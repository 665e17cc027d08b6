"""A training job run as a Ray job on a Ray cluster (``finetuning.ray_train`` under Ray Train), seen by the worker the
way it sees a local engine process (:class:`worker.supervise.EngineProcess`): started, watched, signalled, ended.

The Ray job's log is the one channel back: a reader thread follows it and turns it into what a local run gives, the
engine's output as lines on a pipe and rank 0's events (marked lines) appended to the job's events file, numbered on
from ``seq_base``. A worker that takes the job over from a lost one attaches to the same Ray job: the log is read
again from its start and what was already stored (events up to ``skip_seq`` and the lines before the last of them) is
passed over. Stopping: a cancel stops the Ray job; a stop with a checkpoint writes the stop file every rank watches
(the worker cannot signal processes on other machines)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from finetuning.contract import EXIT_FAILED, RAY_EVENT_MARKER, RAY_LAUNCH_MARKER, STOP_REQUEST_FILE, STOP_SIGNAL
from finetuning.storage.uri import S3Uri, is_remote
from jobcore.executors import stop_ray_job

STATUS_POLL_S = 1.0
RECONNECT_S = 2.0
SUBMIT_RETRY_S = 60.0  # a head that just started has no job agent for a while ("No available agent")


class RayUnavailable(Exception):
    """The Ray cluster did not take or find the job."""


@dataclass
class RayHandle:
    """What :meth:`RayJob.start` gives the runner in place of a ``Popen``: the pipes the log is relayed into."""

    stdout: IO[bytes]
    stderr: IO[bytes]
    pid: None = None


class RayJob:
    """One Ray job: submitted (or attached to), its log relayed, its status polled, stopped when asked."""

    pgid: int | None = None  # no local process group: stopping goes through the Ray job server

    def __init__(
        self,
        address: str,
        submission_id: str,
        events_file: Path,
        log: logging.LoggerAdapter[logging.Logger],
        *,
        stop_location: str,
        seq_base: int = 0,
        skip_seq: int = 0,
        attach: bool = False,
        unreachable_seconds: float = 120.0,
    ) -> None:
        self.address = address
        self.submission_id = submission_id
        self.events_file = events_file
        self.log = log
        self.stop_location = stop_location
        self.seq = seq_base
        self.skip_seq = skip_seq
        self.attach = attach
        self.unreachable_seconds = unreachable_seconds
        self.launches = 0
        self.process: RayHandle | None = None
        self.unreachable: str | None = None
        self._client: Any = None
        self._status: Any = None
        self._status_at = 0.0
        self._silent_since: float | None = None
        self._relay_done = threading.Event()
        self._closing = threading.Event()
        self._stop_written = False
        self._stopped = False
        self._detached = False
        self._stdout_w: int | None = None
        self._seen: set[tuple[int, Any, Any]] = set()

    # -- the runner's surface (EngineProcess's) ---------------------------------------------------------------------

    def start(self, argv: list[str], cwd: Path, env: dict[str, str]) -> RayHandle:
        """Submit ``argv`` (the entrypoint, run on the cluster in a copy of ``cwd``) with ``env``; or, attaching, find
        the Ray job already running. Then follow its log."""
        from ray.job_submission import JobSubmissionClient

        self.events_file.unlink(missing_ok=True)  # a relay of the Ray job's log: rebuilt from it, never appended to
        try:
            self._client = JobSubmissionClient(self.address)
            if self.attach:
                self.log.info("attaching to Ray job %s", self.submission_id)
                self._client.get_job_status(self.submission_id)
            else:
                remove_stop_request(self.stop_location)
                self._submit(argv, cwd, env)
                self.log.info("submitted Ray job %s to %s", self.submission_id, self.address)
        except Exception as exc:
            raise RayUnavailable(
                f"could not {'find' if self.attach else 'submit'} Ray job {self.submission_id} at {self.address}: "
                f"{first_line(exc)}"
            ) from exc
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        os.close(err_w)  # the Ray job's log is one stream: everything comes as stdout
        self._stdout_w = out_w
        self.process = RayHandle(os.fdopen(out_r, "rb"), os.fdopen(err_r, "rb"))
        threading.Thread(target=self._relay, name=f"ray-log-{self.submission_id}", daemon=True).start()
        return self.process

    def _submit(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        """Submit, retrying a job server that is busy or briefly away (a submission that went through is found by
        its id: never two)."""
        deadline = time.monotonic() + SUBMIT_RETRY_S
        while True:
            try:
                self._client.submit_job(
                    entrypoint=" ".join(argv),
                    submission_id=self.submission_id,
                    runtime_env={"working_dir": str(cwd), "env_vars": env},
                    metadata={"finetuning_job": self.submission_id},
                )
                return
            except Exception as exc:
                try:
                    self._client.get_job_status(self.submission_id)
                    return  # it went through before the answer was lost
                except Exception:
                    pass
                if time.monotonic() > deadline:
                    raise
                self.log.warning("submitting Ray job %s failed, retrying: %s", self.submission_id, first_line(exc))
                time.sleep(RECONNECT_S)

    def describe(self) -> dict[str, Any]:
        return {"ray_submission_id": self.submission_id, "ray_address": self.address}

    def exited(self) -> bool:
        """The Ray job reached its end and its log was read to the end, or the cluster stopped answering."""
        if self.unreachable is not None:
            return True
        status = self._poll_status()
        return status is not None and status.is_terminal() and self._relay_done.is_set()

    def signal(self, sig: signal.Signals) -> None:
        if sig == STOP_SIGNAL:
            if not self._stop_written:
                write_stop_request(self.stop_location)
                self._stop_written = True
                self.log.info("asked Ray job %s to stop at a checkpoint (%s)", self.submission_id, self.stop_location)
            return
        self.stop()

    def stop(self) -> None:
        """Stop the Ray job (Ray sends its driver SIGTERM; its Ray workers, and their engines, go with it)."""
        if self._client is None or self._stopped:
            return
        self._stopped = stop_ray_job(self.address, self.submission_id)
        if self._stopped:
            self.log.info("stopped Ray job %s", self.submission_id)

    def detach(self) -> None:
        """Leave the Ray job running (this worker hands the job over): :meth:`end` does not stop it."""
        self._detached = True

    def end(self) -> int:
        """Stop following; stop the Ray job unless it ended or was left to a successor. Its driver's exit code."""
        if not self._detached and not self._terminal():
            self.stop()
        self._closing.set()
        self._relay_done.wait(timeout=10)
        self._close_stdout()
        if self.unreachable is not None:
            return EXIT_FAILED
        try:
            info = self._client.get_job_info(self.submission_id)
        except Exception:
            return EXIT_FAILED
        if info.driver_exit_code is not None:
            return int(info.driver_exit_code)
        return {"SUCCEEDED": 0, "STOPPED": -int(signal.SIGTERM)}.get(str(info.status), EXIT_FAILED)

    def last_words(self) -> str:
        """The cluster's message on a job that did not end well (Ray's, or why it could not be reached)."""
        if self.unreachable is not None:
            return self.unreachable
        status = self._status
        if status is None or str(status) == "SUCCEEDED":
            return ""
        try:
            return str(self._client.get_job_info(self.submission_id).message or "")
        except Exception:
            return ""

    # -- inside ------------------------------------------------------------------------------------------------------

    def _terminal(self) -> bool:
        return self._status is not None and self._status.is_terminal()

    def _poll_status(self) -> Any:
        now = time.monotonic()
        if now - self._status_at < STATUS_POLL_S:
            return self._status
        self._status_at = now
        try:
            self._status = self._client.get_job_status(self.submission_id)
            self._silent_since = None
        except Exception as exc:
            self._silent_since = self._silent_since or now
            if now - self._silent_since > self.unreachable_seconds:
                self.unreachable = (
                    f"the Ray cluster at {self.address} stopped answering for {self.unreachable_seconds:.0f} s while "
                    f"running Ray job {self.submission_id} ({exc})"
                )
            else:
                self.log.warning("Ray job status unavailable, retrying: %s", exc)
        return self._status

    def _relay(self) -> None:
        """Follow the log (reconnecting, from where it was, until the job ends), then mark the relay done."""
        consumed = 0
        pending = ""
        try:
            while not self._closing.is_set():
                seen = 0
                try:
                    for chunk in _follow(self._client, self.submission_id):
                        fresh = chunk[max(0, consumed - seen) :] if seen < consumed else chunk
                        seen += len(chunk)
                        if not fresh:
                            continue
                        consumed += len(fresh)
                        *lines, pending = (pending + fresh).split("\n")
                        for line in lines:
                            self._line(line)
                        if self._closing.is_set():
                            return
                except Exception as exc:
                    self.log.warning("Ray job log interrupted, reconnecting: %s", exc)
                status = self._poll_status()
                if status is not None and status.is_terminal():
                    break
                if self.unreachable is not None:
                    break
                time.sleep(RECONNECT_S)
            if pending:
                self._line(pending)
        finally:
            self._close_stdout()
            self._relay_done.set()

    def _line(self, line: str) -> None:
        event_at = line.find(RAY_EVENT_MARKER)
        if event_at >= 0:
            self._event(line[event_at + len(RAY_EVENT_MARKER) :])
            return
        launch_at = line.find(RAY_LAUNCH_MARKER)
        if launch_at >= 0:
            self._launch(line[launch_at + len(RAY_LAUNCH_MARKER) :])
            return
        if self.seq < self.skip_seq:
            return  # a line a worker before this one already stored
        self._write(line + "\n")

    def _event(self, text: str) -> None:
        try:
            event = json.loads(text, parse_constant=str)
        except json.JSONDecodeError:
            self.log.warning("skipped a marked Ray log line that is not an event: %.200s", text)
            return
        if not isinstance(event, dict):
            return
        # a line Ray's log forwarding delivered twice (two log monitors tailing one file) is the same event
        identity = (self.launches, event.get("seq"), event.get("time"))
        if identity in self._seen:
            return
        self._seen.add(identity)
        # numbered on across the group's restarts (each starts its own events file): one increasing sequence
        self.seq += 1
        if self.seq <= self.skip_seq:
            return
        event["seq"] = self.seq
        with self.events_file.open("a", encoding="utf-8") as f:
            f.write(json.dumps(event, separators=(",", ":")) + "\n")

    def _launch(self, text: str) -> None:
        try:
            launch = int(json.loads(text).get("launch", 0))
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
            return
        if launch <= self.launches:
            return  # the driver's closing count repeats the last start
        self.launches = launch
        if launch > 1:
            self._write(
                f"Ray Train restarted the training group (start {launch}) after a lost worker or node: it resumes "
                "from its newest complete checkpoint\n"
            )

    def _write(self, text: str) -> None:
        if self._stdout_w is None:
            return
        try:
            os.write(self._stdout_w, text.encode("utf-8", errors="replace"))
        except OSError:
            pass

    def _close_stdout(self) -> None:
        if self._stdout_w is not None:
            fd, self._stdout_w = self._stdout_w, None
            os.close(fd)


def first_line(exc: BaseException) -> str:
    """An exception as one line (a database or HTTP error's message can run to pages)."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _follow(client: Any, submission_id: str) -> Any:
    """The job's log from its start, chunk by chunk as it is written, until the job ends (Ray's websocket tail)."""
    loop = asyncio.new_event_loop()
    stream = client.tail_job_logs(submission_id).__aiter__()
    try:
        while True:
            try:
                yield loop.run_until_complete(stream.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(stream.aclose())
        loop.close()


def stop_request(outputs: str) -> str:
    """Where a stop with a checkpoint is asked for: a file in the run's output location, which every rank watches."""
    return f"{outputs.rstrip('/')}/{STOP_REQUEST_FILE}"


def write_stop_request(location: str) -> None:
    if is_remote(location):
        from finetuning.storage.client import client

        uri = S3Uri.parse(location)
        client().put_object(Bucket=uri.bucket, Key=uri.key, Body=b"stop\n")
        return
    path = Path(location)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("stop\n")


def remove_stop_request(location: str) -> None:
    """Before a run starts: an earlier run's request must not stop this one."""
    if is_remote(location):
        from finetuning.storage.client import client

        uri = S3Uri.parse(location)
        client().delete_object(Bucket=uri.bucket, Key=uri.key)
        return
    Path(location).unlink(missing_ok=True)
