"""Bucket inputs on local disk: downloaded once into a cache keyed by the objects' identity, shared by the jobs of a
machine, and kept under a size limit by evicting what was used least recently.

An entry is one object or one folder (every object below a prefix), stored under a name made from the URI and the
ETag and size of each object: a changed object is a new entry, never a stale file. Locks are ``flock`` locks on a
file beside each entry: exclusive while it downloads (a second job that needs it waits, then uses it), shared while
a process uses it (eviction skips an entry some process holds; the lock goes when the process ends)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from finetuning.storage.client import ObjectInfo, StorageError, head, list_objects
from finetuning.storage.transfer import download_file, folder_relative
from finetuning.storage.uri import S3Uri

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (bytes done, bytes total)
_META = "entry.json"
# file descriptors of the shared locks this process holds on the entries it uses, for its lifetime
_held: dict[Path, IO[bytes]] = {}


@dataclass(frozen=True)
class CachedInput:
    """A bucket input on local disk: ``path`` is the file, or the folder mirroring the prefix."""

    uri: S3Uri
    path: Path
    size: int
    hit: bool  # already cached: nothing was downloaded


class DownloadCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root.expanduser()
        self.max_bytes = max_bytes

    # -- public --------------------------------------------------------------------------------------------------

    def file(self, uri: S3Uri, progress: Progress | None = None) -> CachedInput:
        """The object at ``uri`` as a local file (downloaded unless cached)."""
        info = head(uri)
        return self._entry(uri, [info], progress, folder=False)

    def folder(self, uri: S3Uri, progress: Progress | None = None) -> CachedInput:
        """Every object below ``uri`` as a local folder with the same layout (downloaded unless cached)."""
        objects = list(list_objects(uri))
        if not objects:
            raise StorageError(f"{uri}: no objects below this prefix", "storage_object_not_found")
        return self._entry(uri, objects, progress, folder=True)

    def evict(self, keep: Path | None = None) -> int:
        """Delete the least recently used entries until the cache holds at most ``max_bytes``; an entry some process
        uses (``keep`` or one with a shared lock) stays. Returns the bytes freed."""
        entries = []
        for meta in self.root.glob(f"*/{_META}"):
            try:
                size = int(json.loads(meta.read_text())["size"])
                entries.append((meta.stat().st_mtime, size, meta.parent))
            except (OSError, ValueError, KeyError):
                continue
        total = sum(size for _, size, _ in entries)
        freed = 0
        for _, size, folder in sorted(entries):
            if total <= self.max_bytes:
                break
            if folder == keep:
                continue
            with _try_exclusive(_lock_path(folder)) as got:
                if not got:
                    continue  # in use
                _remove_entry(folder)
            total -= size
            freed += size
            logger.info("storage cache: evicted %s (%d bytes, least recently used)", folder.name, size)
        if total > self.max_bytes:
            logger.warning(
                "storage cache holds %d bytes, over its limit of %d: the rest is in use or the newest input",
                total,
                self.max_bytes,
            )
        return freed

    # -- internals -----------------------------------------------------------------------------------------------

    def _entry(self, uri: S3Uri, objects: list[ObjectInfo], progress: Progress | None, *, folder: bool) -> CachedInput:
        identity = json.dumps([str(uri), folder, sorted((o.key, o.etag, o.size) for o in objects)])
        name = hashlib.sha256(identity.encode()).hexdigest()[:32]
        entry = self.root / name
        payload = entry / "tree" if folder else entry / "object" / (uri.name or "object")
        size = sum(o.size for o in objects)
        self.root.mkdir(parents=True, exist_ok=True)
        lock = _lock_path(entry)
        if lock in _held:  # this process uses the entry already (e.g. as the model and as the tokenizer)
            os.utime(entry / _META)
            return CachedInput(uri, payload, size, True)
        hit = True
        while True:
            with _exclusive(lock):
                if not (entry / _META).is_file():
                    hit = False
                    self._download(uri, objects, entry, payload, folder=folder, size=size, progress=progress)
                os.utime(entry / _META)  # last use, for eviction
            _hold_shared(lock)
            if (entry / _META).is_file():
                break
            # another process evicted it between the exclusive lock and the shared one: fetch it again
            _held.pop(lock).close()
        if not hit:
            self.evict(keep=entry)
        return CachedInput(uri, payload, size, hit)

    def _download(
        self,
        uri: S3Uri,
        objects: list[ObjectInfo],
        entry: Path,
        payload: Path,
        *,
        folder: bool,
        size: int,
        progress: Progress | None,
    ) -> None:
        if entry.exists():
            shutil.rmtree(entry)  # a download cut off earlier (no entry.json): start again
        partial = entry.with_name(entry.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial)
        counter = _ByteCounter(size, progress)
        # a key that would land outside the folder is refused before anything is written
        relatives = [folder_relative(uri, info.key) if folder else "" for info in objects]
        for info, relative in zip(objects, relatives, strict=True):
            target = (partial / "tree" / relative) if folder else partial / "object" / (uri.name or "object")
            if folder and not relative:
                continue  # a "folder" placeholder object
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                download_file(S3Uri(uri.bucket, info.key), target, counter.add)
            except StorageError:
                shutil.rmtree(partial, ignore_errors=True)
                raise
        (partial / _META).write_text(json.dumps({"uri": str(uri), "size": size, "objects": len(objects)}))
        partial.rename(entry)
        counter.finish()
        logger.info("downloaded %s (%d bytes) into the storage cache", uri, size)


class _ByteCounter:
    """Sums boto3's per-chunk callbacks (called from its transfer threads) and reports at most twice a second."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self.progress = progress
        self.last = 0.0
        self.lock = threading.Lock()

    def add(self, count: int) -> None:
        with self.lock:
            self.done += count
            now = time.monotonic()
            if self.progress is None or now - self.last < 0.5:
                return
            self.last = now
            done = min(self.done, self.total)
        self.progress(done, self.total)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress(self.total, self.total)


def _lock_path(entry: Path) -> Path:
    return entry.with_name(entry.name + ".lock")


@contextlib.contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    with lock.open("a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _try_exclusive(lock: Path) -> Iterator[bool]:
    with lock.open("a+b") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _hold_shared(lock: Path) -> None:
    """Keep a shared lock on ``lock`` while this process lives, so no other process evicts the entry in use."""
    if lock in _held:
        return
    f = lock.open("a+b")
    fcntl.flock(f, fcntl.LOCK_SH)
    _held[lock] = f


def release_all() -> None:
    """Give back the shared locks of this process (tests; a process that ends gives them back anyway)."""
    for f in _held.values():
        f.close()
    _held.clear()


def _remove_entry(entry: Path) -> None:
    # rename first: a reader never sees a half-deleted entry that still has its entry.json
    doomed = entry.with_name(entry.name + f".evicting-{os.getpid()}")
    entry.rename(doomed)
    shutil.rmtree(doomed, ignore_errors=True)
