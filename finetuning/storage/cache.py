"""Bucket inputs on local disk: downloaded once into a cache keyed by the objects' identity, shared by the jobs of a
machine, and kept under a size limit by evicting what was used least recently.

An entry is one object or one folder (every object below a prefix), stored under a name made from the URI and the
ETag and size of each object: a changed object is a new entry, never a stale file. Locks are ``flock`` locks on a
file beside each entry: exclusive while it downloads (a second job that needs it waits, then uses it), shared while
a process uses it (eviction skips an entry some process holds; the lock goes when the process ends): the helpers of
:mod:`finetuning.cache_entries`, shared with the preprocessing cache."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from finetuning.cache_entries import Entry, evict, exclusive, holds, lock_path, release
from finetuning.cache_entries import hold_shared as _hold_shared  # a name of this module: tests replace it
from finetuning.cache_entries import release_all as release_all
from finetuning.storage.client import ObjectInfo, StorageError, head, list_objects
from finetuning.storage.transfer import download_file, folder_relative
from finetuning.storage.uri import S3Uri

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (bytes done, bytes total)
_META = "entry.json"


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
                entries.append(Entry(meta.parent, size, meta.stat().st_mtime))
            except (OSError, ValueError, KeyError):
                continue
        keep_folders = () if keep is None else (keep,)
        evicted = evict(entries, self.max_bytes, keep=keep_folders, cache="storage cache")
        return sum(entry.size for entry in evicted)

    # -- internals -----------------------------------------------------------------------------------------------

    def _entry(self, uri: S3Uri, objects: list[ObjectInfo], progress: Progress | None, *, folder: bool) -> CachedInput:
        identity = json.dumps([str(uri), folder, sorted((o.key, o.etag, o.size) for o in objects)])
        name = hashlib.sha256(identity.encode()).hexdigest()[:32]
        entry = self.root / name
        payload = entry / "tree" if folder else entry / "object" / (uri.name or "object")
        size = sum(o.size for o in objects)
        self.root.mkdir(parents=True, exist_ok=True)
        lock = lock_path(entry)
        if holds(lock):  # this process uses the entry already (e.g. as the model and as the tokenizer)
            os.utime(entry / _META)
            return CachedInput(uri, payload, size, True)
        hit = True
        while True:
            with exclusive(lock):
                if not (entry / _META).is_file():
                    hit = False
                    self._download(uri, objects, entry, payload, folder=folder, size=size, progress=progress)
                os.utime(entry / _META)  # last use, for eviction
            _hold_shared(lock)
            if (entry / _META).is_file():
                break
            # another process evicted it between the exclusive lock and the shared one: fetch it again
            release(lock)
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
