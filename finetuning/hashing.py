"""SHA-256 of input files and folders, with an on-disk cache keyed by path, size, modification time and inode: a
model's weights are hashed once per machine, not once per run."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_HASH_CHUNK = 8 * 1024 * 1024


class HashCache:
    """SHA-256 digests of files, kept on disk by (path, size, mtime, inode): a file is read once per change.
    ``root`` None keeps nothing (every call reads the file)."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    def sha256(self, path: Path) -> str:
        stat = path.stat()
        key = hashlib.sha256(
            f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_ino}".encode()
        ).hexdigest()
        entry = self.root / key[:2] / key if self.root is not None else None
        if entry is not None:
            with contextlib.suppress(OSError):
                cached = entry.read_text(encoding="ascii").strip()
                if len(cached) == 64:
                    return cached
        digest = file_sha256(path)
        if entry is not None:
            _write_atomically(entry, digest)
        return digest


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that no reader sees a part of it; a cache that cannot be written is no error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        logger.debug("could not cache a file digest in %s: %s", path.parent, exc)


def folder_files(folder: Path) -> list[Path]:
    """The files a folder's content hash covers: every regular file below it (symbolic links followed, as a hub
    cache's snapshot has them), leaving out hidden files and folders (``.git``, ``.cache``, markers)."""
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        found.append(path)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def folder_digest(folder: Path, cache: HashCache) -> dict[str, Any]:
    """``sha256``: SHA-256 over ``<name>\\0<sha256>\\n`` of each file (names relative, ``/``-separated, sorted),
    ``bytes`` in all, and ``files``: name -> {sha256, bytes}."""
    files: dict[str, dict[str, Any]] = {}
    for path in folder_files(folder):
        files[path.relative_to(folder).as_posix()] = {"sha256": cache.sha256(path), "bytes": path.stat().st_size}
    listing = "".join(f"{name}\0{entry['sha256']}\n" for name, entry in files.items())
    return {
        "sha256": hashlib.sha256(listing.encode()).hexdigest(),
        "bytes": sum(entry["bytes"] for entry in files.values()),
        "files": files,
    }


# -- inputs --------------------------------------------------------------------------------------------------------
