"""The preprocessing cache's entries: which process uses them, when they were last used, and a size limit.

The cache folder (``<FINETUNING_CACHE_DIR>/preprocessed``, shared by the jobs of a volume) holds one folder per entry:
a data file's tokenized SFT shards (``src-<key>``, :mod:`finetuning.data.sources`), packed rows (``packed-<key>``,
:mod:`finetuning.data.packing`), a file's preference or prompt rows (``pref-<key>``, ``prompt-<key>``,
:mod:`finetuning.data.row_files`). A process that uses an entry, found in the cache or written by it, calls
:func:`use_entry` before it looks into the entry (a shared lock for the rest of the process's life: a memory-mapped
shard is never deleted under a running job, which a network volume might not survive) and :func:`record_use` on a
file of it once it found it there (its last use).

:func:`evict_preprocessing_cache` keeps the folder under a byte limit: once a run's data is prepared, entries go least
recently used first, never one a process uses (:mod:`finetuning.cache_entries`); the staging folders of killed runs
and evictions cut off go once they are an hour old, and lock files whose entry was never written once no process
holds them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from finetuning.cache_entries import (
    EVICTING,
    Entry,
    evict,
    folder_entry,
    hold_shared,
    lock_path,
    record_use,
    remove_leftovers,
    remove_unused_locks,
)

logger = logging.getLogger(__name__)

PREFIXES = ("src", "packed", "pref", "prompt")
_ENTRY_NAME = re.compile(rf"^(?:{'|'.join(PREFIXES)})-[0-9a-f]+$")
# staging folders (tempfile.mkdtemp(prefix=".<prefix>-<key>.tmp-")) and entries whose deletion was cut off
LEFTOVERS = (*(f".{prefix}-*.tmp-*" for prefix in PREFIXES), f"*{EVICTING}*")
LEFTOVER_AGE_S = 3600.0

__all__ = ["LEFTOVERS", "PREFIXES", "Eviction", "cache_entries", "evict_preprocessing_cache", "record_use", "use_entry"]


def use_entry(entry: Path) -> None:
    """This process uses ``entry`` (there or still to be written) until it ends: no eviction takes it meanwhile."""
    hold_shared(lock_path(entry))


def cache_entries(root: Path) -> list[Entry]:
    """The entries under ``root``: their folders, sizes (the bytes of their files) and last use."""
    entries = []
    for folder in root.iterdir() if root.is_dir() else ():
        if not _ENTRY_NAME.match(folder.name) or folder.is_symlink() or not folder.is_dir():
            continue
        try:
            entries.append(folder_entry(folder))
        except FileNotFoundError:
            continue  # evicted meanwhile
    return entries


@dataclass(frozen=True)
class Eviction:
    """What :func:`evict_preprocessing_cache` deleted."""

    evicted: list[Entry] = field(default_factory=list)
    leftovers: list[Path] = field(default_factory=list)

    @property
    def freed(self) -> int:
        """Bytes of the entries evicted (leftovers not counted)."""
        return sum(entry.size for entry in self.evicted)


def evict_preprocessing_cache(root: Path, max_bytes: int) -> Eviction:
    """Delete the least recently used entries under ``root`` until the rest hold at most ``max_bytes``, skipping
    every entry a process uses (this one included); and the leftovers of killed runs older than an hour, and the
    lock files of entries never written that no process holds."""
    if not root.is_dir():
        return Eviction()
    leftovers = remove_leftovers(root, LEFTOVERS, older_than_s=LEFTOVER_AGE_S)
    evicted = evict(cache_entries(root), max_bytes, cache="preprocessing cache")
    remove_unused_locks(root)
    return Eviction(evicted, leftovers)
