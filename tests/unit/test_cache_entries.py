"""The helpers both caches share (finetuning.cache_entries), with real files, real ``flock`` locks and real processes:
a lock file removed by an eviction while a process waits on it, and eviction that spares what a process holds."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from finetuning.cache_entries import (
    Entry,
    evict,
    folder_entry,
    hold_shared,
    holds,
    lock_path,
    release_all,
    try_exclusive,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

# tries the lock without waiting in another process: "free" or "held"
PROBE = """
import sys
from pathlib import Path
from finetuning.cache_entries import try_exclusive
with try_exclusive(Path(sys.argv[1])) as got:
    print("free" if got else "held")
"""


@pytest.fixture(autouse=True)
def _release() -> Iterator[None]:
    yield
    release_all()


def probe(lock: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(lock)], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def entry(root: Path, name: str, size: int, age_s: float) -> Entry:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "data").write_bytes(b"x" * size)
    return Entry(folder, size, time.time() - age_s)


def test_eviction_goes_by_last_use_until_the_rest_fit(tmp_path: Path) -> None:
    entries = [entry(tmp_path, "new", 100, 10), entry(tmp_path, "old", 100, 30), entry(tmp_path, "mid", 100, 20)]
    evicted = evict(entries, 150)
    assert [e.folder.name for e in evicted] == ["old", "mid"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]  # no lock file or renamed folder left behind
    assert evict([entries[0]], 100) == []  # fits


def test_kept_and_held_entries_stay(tmp_path: Path) -> None:
    kept, held, free = (entry(tmp_path, name, 10, 30 - i) for i, name in enumerate(("kept", "held", "free")))
    hold_shared(lock_path(held.folder))
    assert holds(lock_path(held.folder))
    assert probe(lock_path(held.folder)) == "held"  # to other processes too
    assert evict([kept, held, free], 0, keep=[kept.folder]) == [free]
    assert kept.folder.is_dir()
    assert held.folder.is_dir()
    assert not free.folder.exists()


def test_a_lock_file_removed_while_a_process_waits_on_it_is_locked_anew(tmp_path: Path) -> None:
    """An eviction removes the lock file under its exclusive lock; a process that opened the old file and waits on
    it must end up holding a lock that others see, on the file now at the path."""
    lock = lock_path(tmp_path / "entry")
    waiter = threading.Thread(target=hold_shared, args=(lock,))
    with try_exclusive(lock) as got:
        assert got
        waiter.start()
        time.sleep(0.3)  # the thread has opened the file and waits for its lock
        assert waiter.is_alive()
        lock.unlink()
    waiter.join(timeout=10)
    assert not waiter.is_alive()
    assert lock.exists()
    assert probe(lock) == "held"


def test_folder_entry_counts_the_files_and_takes_the_newest_time(tmp_path: Path) -> None:
    folder = tmp_path / "e"
    (folder / "sub").mkdir(parents=True)
    (folder / "a").write_bytes(b"a" * 3)
    (folder / "sub" / "b").write_bytes(b"b" * 4)
    described = folder_entry(folder)
    assert described.size == 7
    assert described.last_use == max(p.stat().st_mtime for p in (folder, folder / "a", folder / "sub" / "b"))
