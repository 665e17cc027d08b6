"""Cache entries on disk shared by processes: last use, in-use locks, least-recently-used eviction.

An entry is a folder under a cache's root, complete once it is there (caches build an entry elsewhere and rename it
into place). Beside it, ``<entry>.lock`` carries ``flock`` locks:

- a process that uses an entry holds a shared lock on it for the rest of its life (:func:`hold_shared`; the lock goes
  when the process ends, however it ends). Take it *before* looking into the entry: from then on no eviction can
  take the entry away;
- a process that fills an entry may hold an exclusive lock meanwhile (:func:`exclusive`): another process that needs
  the entry waits for it;
- eviction (:func:`evict`) removes an entry only under an exclusive lock it got without waiting
  (:func:`try_exclusive`), so never one a process uses, and never one this process holds (checked first: where
  ``flock`` is emulated with POSIX locks, as on NFS, a process's own locks would not stop it). It renames the entry
  before deleting it, so no reader sees half of one, and removes the lock file while it holds it: whoever opened the
  old file meanwhile notices once it gets its lock and opens the new one.

An entry's last use is the modification time of a file in it, set on each use by :func:`record_use`.

Used by the download cache (:mod:`finetuning.storage.cache`) and the preprocessing cache
(:mod:`finetuning.data.preprocessing_cache`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)

EVICTING = ".evicting-"  # an evicted entry is renamed to "<entry>.evicting-<pid>" before it is deleted

# the open lock files of the shared locks this process holds on the entries it uses, for its lifetime
_held: dict[Path, IO[bytes]] = {}


@dataclass(frozen=True)
class Entry:
    """A cache entry as eviction sees it."""

    folder: Path
    size: int  # bytes
    last_use: float  # seconds since the epoch


def lock_path(entry: Path) -> Path:
    """The lock file of ``entry``: ``<entry>.lock``, beside it."""
    return entry.with_name(entry.name + ".lock")


# -- locks ------------------------------------------------------------------------------------------------------------


def _open_locked(lock: Path, operation: int) -> IO[bytes] | None:
    """``lock`` opened (created if missing) and locked with ``operation``; None when ``LOCK_NB`` is set and another
    holder is in the way. When the file was removed or replaced while this process waited for its lock (an eviction
    removes an entry's lock file under its exclusive lock), the lock is taken again on the file now at ``lock``."""
    while True:
        f = lock.open("a+b")
        try:
            fcntl.flock(f, operation)
        except BlockingIOError:
            f.close()
            return None
        except BaseException:
            f.close()
            raise
        try:
            now = os.stat(lock)
            opened = os.fstat(f.fileno())
            if (now.st_dev, now.st_ino) == (opened.st_dev, opened.st_ino):
                return f
        except FileNotFoundError:
            pass
        f.close()


@contextlib.contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock`` (waiting for it) for the block."""
    f = _open_locked(lock, fcntl.LOCK_EX)
    assert f is not None
    with f:
        yield


@contextlib.contextmanager
def try_exclusive(lock: Path) -> Iterator[bool]:
    """Hold an exclusive lock on ``lock`` for the block if no other holder is in the way (yields True), else
    yields False at once."""
    f = _open_locked(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    if f is None:
        yield False
        return
    with f:
        yield True


def hold_shared(lock: Path) -> None:
    """Keep a shared lock on ``lock`` while this process lives (waiting for an exclusive holder to finish), so no
    other process evicts the entry in use. Taken once per process."""
    if lock in _held:
        return
    f = _open_locked(lock, fcntl.LOCK_SH)
    assert f is not None
    _held[lock] = f


def holds(lock: Path) -> bool:
    """Whether this process holds its shared lock on ``lock``."""
    return lock in _held


def release(lock: Path) -> None:
    """Give back this process's shared lock on ``lock`` (if it holds one)."""
    f = _held.pop(lock, None)
    if f is not None:
        f.close()


def release_all() -> None:
    """Give back every shared lock of this process (tests; a process that ends gives them back anyway)."""
    for f in _held.values():
        f.close()
    _held.clear()


# -- last use ---------------------------------------------------------------------------------------------------------


def record_use(path: Path) -> None:
    """Make ``path`` (a file of an entry) say that the entry was used now, for eviction."""
    try:
        os.utime(path)
    except OSError as exc:  # gone, or a read-only cache: the entry just looks older than it is
        logger.debug("cannot record the use of %s: %s", path, exc)


def folder_entry(folder: Path) -> Entry:
    """``folder`` as an entry: the bytes of the files in it, and its last use, the newest modification time of the
    folder and its files."""
    size = 0
    newest = folder.stat().st_mtime
    for parent, _, names in os.walk(folder):
        for name in names:
            try:
                stat = os.lstat(os.path.join(parent, name))
            except FileNotFoundError:
                continue
            size += stat.st_size
            newest = max(newest, stat.st_mtime)
    return Entry(folder, size, newest)


# -- eviction ---------------------------------------------------------------------------------------------------------


def evict(
    entries: Iterable[Entry], max_bytes: int, *, keep: Collection[Path] = (), cache: str = "cache"
) -> list[Entry]:
    """Delete ``entries``, least recently used first, until the rest hold at most ``max_bytes``. Entries in ``keep``,
    those this process holds and those another process holds a lock on stay. Returns the entries deleted; ``cache``
    names the cache in the log."""
    entries = list(entries)
    total = sum(entry.size for entry in entries)
    evicted: list[Entry] = []
    for entry in sorted(entries, key=lambda e: (e.last_use, e.folder.name)):
        if total <= max_bytes:
            break
        lock = lock_path(entry.folder)
        if entry.folder in keep or holds(lock):
            continue
        taken, doomed = _take_out(entry.folder)
        if not taken:
            continue  # in use
        total -= entry.size
        if doomed is None:
            continue  # another process evicted it first
        shutil.rmtree(doomed, ignore_errors=True)
        evicted.append(entry)
        logger.info("%s: evicted %s (%d bytes, least recently used)", cache, entry.folder.name, entry.size)
    if total > max_bytes:
        logger.warning(
            "%s holds %d bytes, over its limit of %d: the rest is in use or the newest entry", cache, total, max_bytes
        )
    return evicted


def _take_out(folder: Path) -> tuple[bool, Path | None]:
    """Under ``folder``'s exclusive lock, if no process uses it: rename it out of the way and remove its lock file.
    (False, None) when it is in use; (True, None) when it was gone already; else (True, the renamed folder)."""
    lock = lock_path(folder)
    with try_exclusive(lock) as got:
        if not got:
            return False, None
        doomed = folder.with_name(folder.name + f"{EVICTING}{os.getpid()}")
        try:
            folder.rename(doomed)
        except FileNotFoundError:
            gone = True
        except OSError as exc:
            logger.warning("cannot evict %s: %s", folder, exc)
            return False, None
        else:
            gone = False
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()  # under its lock: a process waiting on this file retries on a new one
        return True, None if gone else doomed


def remove_unused_locks(root: Path) -> int:
    """Delete the lock files under ``root`` whose entry is not there (an entry never written: its run failed, or was
    killed) and which no process holds. Returns how many went."""
    removed = 0
    for lock in root.glob("*.lock"):
        entry = lock.with_name(lock.name.removesuffix(".lock"))
        if entry.exists() or holds(lock):
            continue
        with try_exclusive(lock) as got:
            if not got or entry.exists():
                continue
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()  # under its lock: a process waiting on this file retries on a new one
                removed += 1
    return removed


def remove_leftovers(root: Path, patterns: Iterable[str], *, older_than_s: float) -> list[Path]:
    """Delete what matches ``patterns`` (globs) in ``root`` and was last modified (itself or a file in it) over
    ``older_than_s`` seconds ago: the staging folders of processes that were killed, entries whose eviction was cut
    off. Returns what was deleted."""
    cutoff = time.time() - older_than_s
    removed = []
    for pattern in patterns:
        for path in root.glob(pattern):
            try:
                if path.is_dir() and not path.is_symlink():
                    if folder_entry(path).last_use >= cutoff:
                        continue
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    if path.lstat().st_mtime >= cutoff:
                        continue
                    path.unlink()
            except FileNotFoundError:
                continue  # removed meanwhile (its owner finished, or another process cleaned up)
            removed.append(path)
            logger.info("removed %s, left over from a process that did not finish", path)
    return removed
