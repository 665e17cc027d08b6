"""Background uploads that survive a storage outage: folders and files go up in order on one thread while training
goes on; a failed upload is retried with back-off until ``retry_seconds`` have passed without success, and the local
copy stays until its upload is confirmed.

A folder uploaded with ``marker`` gets :data:`~finetuning.contract.UPLOAD_MARKER` last, listing its files: a reader
(resume) treats a folder without it as half-uploaded and never picks it."""

from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from finetuning.storage.client import StorageError
from finetuning.storage.transfer import upload_file, upload_tree
from finetuning.storage.uri import S3Uri

logger = logging.getLogger(__name__)

Report = Callable[..., None]  # called with keyword fields of a storage event (state, uri, ...)
MAX_BACKOFF_S = 30.0


@dataclass
class _Task:
    source: Path  # a snapshot the uploader owns (deleted once uploaded) or the caller's own path
    uri: S3Uri
    marker: bool
    owned: bool
    label: str
    on_done: Callable[[], None] | None = None
    sent: set[str] = field(default_factory=set)


class Uploader:
    """One background thread that uploads what it is given, in order (a checkpoint's marker only after its files)."""

    def __init__(self, *, retry_seconds: float, report: Report | None = None, snapshots: Path | None = None) -> None:
        self.retry_seconds = retry_seconds
        self.report = report or (lambda **fields: None)
        self.snapshots = snapshots  # where folders are hard-linked before upload (the trainer may delete its own)
        self.failed: StorageError | None = None
        self._queue: queue.Queue[_Task | None] = queue.Queue()
        self._pending = 0
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="finetuning-uploader", daemon=True)
        self._thread.start()

    def submit(
        self,
        local: Path,
        uri: S3Uri,
        *,
        marker: bool = False,
        snapshot: bool = False,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        """Upload ``local`` (a file or a folder) to ``uri``. ``snapshot``: hard-link the folder first, so that the
        caller may delete or rewrite it meanwhile (the trainer rotating old checkpoints)."""
        source, owned = local, False
        if snapshot and self.snapshots is not None and local.is_dir():
            source = self.snapshots / f"{local.name}-{time.monotonic_ns()}"
            _link_tree(local, source)
            owned = True
        with self._idle:
            self._pending += 1
        self._queue.put(_Task(source, uri, marker, owned, local.name, on_done))

    def wait(self, timeout: float | None = None) -> None:
        """Block until everything submitted is uploaded (or given up on); raise the failure if one was given up."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise StorageError(f"uploads still running after {timeout:.0f} s", "storage_error")
                self._idle.wait(left)
        if self.failed is not None:
            raise self.failed

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            task = self._queue.get()
            if task is None:
                return
            try:
                self._upload(task)
            except Exception as exc:  # not the storage (a file gone from under us, a bug): no retry helps
                logger.exception("uploading %s failed", task.label)
                self.failed = StorageError(
                    f"uploading {task.label} to {task.uri} failed: {type(exc).__name__}: {exc}", "storage_error"
                )
                self.report(state="failed", uri=str(task.uri), error=self.failed.message)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _upload(self, task: _Task) -> None:
        started = time.monotonic()
        delay = 1.0
        attempt = 1
        while True:
            try:
                if task.source.is_dir():
                    sent = upload_tree(task.source, task.uri, marker=task.marker, skip=task.sent)
                else:
                    upload_file(task.source, task.uri)
                    sent = task.source.stat().st_size
            except StorageError as exc:
                waited = time.monotonic() - started
                if waited + delay > self.retry_seconds:
                    self.failed = StorageError(
                        f"uploading {task.label} to {task.uri} failed for {waited:.0f} s: {exc.message}. The local "
                        f"copy is kept at {task.source}; earlier uploaded checkpoints stay resumable",
                        "storage_error",
                    )
                    logger.error("%s", self.failed.message)
                    self.report(state="failed", uri=str(task.uri), error=exc.message)
                    return
                logger.warning(
                    "upload of %s failed (attempt %d), retrying in %.0f s: %s", task.label, attempt, delay, exc.message
                )
                self.report(state="retrying", uri=str(task.uri), attempt=attempt, error=exc.message)
                time.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
                attempt += 1
                continue
            break
        self.report(state="uploaded", uri=str(task.uri), bytes=sent, seconds=round(time.monotonic() - started, 3))
        if task.owned:
            shutil.rmtree(task.source, ignore_errors=True)
        if task.on_done is not None:
            try:
                task.on_done()
            except Exception:  # pruning old checkpoints is housekeeping: it never fails the run
                logger.warning("after uploading %s", task.label, exc_info=True)


def _link_tree(source: Path, target: Path) -> None:
    """A copy of ``source`` made of hard links (instant, no extra space); a real copy across file systems."""
    target.parent.mkdir(parents=True, exist_ok=True)

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link)
