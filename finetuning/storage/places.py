"""Where a run reads and writes when a config names a bucket: an ``s3://`` input becomes a local copy from the
machine's download cache; an ``s3://`` output is written to a local staging folder and published to the bucket
(checkpoints as they are saved, the rest at the end); a resumed run first fetches the newest checkpoint whose upload
completed. Everything here leaves local paths as they are, so the same code serves both."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from finetuning.contract import EventType, is_complete_checkpoint, last_uploaded_checkpoint
from finetuning.settings import EngineSettings
from finetuning.storage.cache import DownloadCache
from finetuning.storage.client import list_objects
from finetuning.storage.transfer import download_tree
from finetuning.storage.uploader import Report, Uploader
from finetuning.storage.uri import S3Uri, is_remote

if TYPE_CHECKING:
    from finetuning.events import EventWriter

logger = logging.getLogger(__name__)


def download_cache(settings: EngineSettings) -> DownloadCache:
    return DownloadCache(settings.storage_cache, int(settings.storage_cache_max_gb * 2**30))


def readable(value: str, *, folder: bool, settings: EngineSettings, events: EventWriter | None = None) -> str:
    """``value`` itself when it is local (or a hub id); for ``s3://...`` the local copy of the object (``folder``:
    of every object below the prefix), downloaded unless the cache holds it. Download progress goes to ``events``."""
    if not is_remote(value):
        return value
    uri = S3Uri.parse(value)
    announced = False

    def progress(done: int, total: int) -> None:
        nonlocal announced
        if events is None:
            return
        if not announced:
            announced = True
            events.phase("downloading")
        events.emit(
            EventType.STORAGE, action="download", state="progress", uri=str(uri), bytes_done=done, bytes_total=total
        )

    cache = download_cache(settings)
    cached = cache.folder(uri, progress) if folder else cache.file(uri, progress)
    if events is not None:
        state = "cached" if cached.hit else "downloaded"
        events.emit(EventType.STORAGE, action="download", state=state, uri=str(uri), bytes=cached.size)
    logger.info("%s: %s (%s)", uri, cached.path, "cache hit" if cached.hit else "downloaded")
    return str(cached.path)


def readable_beside(value: str, sibling: str, *, settings: EngineSettings, events: EventWriter | None = None) -> str:
    """Like :func:`readable` for a folder, and where the bucket holds a folder named ``sibling`` beside it (the grown
    base an SFT run saves beside its adapter), that one too, linked beside the local copy: code that looks next to
    the folder finds it there as it would on disk."""
    if not is_remote(value):
        return value
    uri = S3Uri.parse(value)
    local = Path(readable(value, folder=True, settings=settings, events=events))
    parent = S3Uri(uri.bucket, uri.key.rpartition("/")[0])
    beside = parent / sibling
    if not any(True for _ in list_objects(beside, limit=1)):
        return str(local)
    other = Path(readable(str(beside), folder=True, settings=settings, events=events))
    view = settings.staging / "views" / hashlib.sha256(f"{local}|{other}".encode()).hexdigest()[:24]
    view.mkdir(parents=True, exist_ok=True)
    for name, target in ((uri.name, local), (sibling, other)):
        link = view / name
        if not link.is_symlink():
            link.symlink_to(target, target_is_directory=True)
    return str(view / uri.name)


@dataclass(frozen=True)
class OutputPlace:
    """Where a run writes (``local``) and, for a bucket output, where that is published (``remote``)."""

    local: Path
    remote: S3Uri | None = None

    def public(self, path: Path | str) -> str:
        """How a written path is named to users: its bucket URI when the output is published, else the path."""
        path = Path(path)
        if self.remote is None or not path.is_relative_to(self.local):
            return str(path)
        relative = path.relative_to(self.local).as_posix()
        return str(self.remote / relative) if relative != "." else str(self.remote)

    def remote_for(self, path: Path) -> S3Uri:
        assert self.remote is not None
        return self.remote / path.relative_to(self.local).as_posix()


def output_place(value: str | Path, settings: EngineSettings) -> OutputPlace:
    """A local output path as it is, or a bucket prefix staged under ``settings.staging`` (the same prefix always
    maps to the same folder, so a run resumed on this machine finds what it wrote)."""
    text = str(value)
    if not is_remote(text):
        return OutputPlace(Path(text).expanduser())
    uri = S3Uri.parse(text)
    return OutputPlace(settings.staging / uri.bucket / uri.key, uri)


def newest_uploaded_checkpoint(remote: S3Uri) -> str | None:
    """The URI of the newest checkpoint below ``remote`` whose upload completed, or None (the bucket's side of
    :func:`finetuning.contract.last_complete_checkpoint`)."""
    keys = [S3Uri(remote.bucket, info.key).relative_to(remote) for info in list_objects(remote)]
    name = last_uploaded_checkpoint(keys)
    return None if name is None else str(remote / name)


def fetch_last_checkpoint(place: OutputPlace, events: EventWriter | None = None) -> Path | None:
    """For a bucket output: the newest checkpoint whose upload completed, in the local staging folder (downloaded
    unless a complete copy is already there); None when the bucket holds none. A local output: None."""
    if place.remote is None:
        return None
    newest = newest_uploaded_checkpoint(place.remote)
    if newest is None:
        return None
    name = S3Uri.parse(newest).name
    local = place.local / name
    if is_complete_checkpoint(local):
        return local
    if local.exists():
        shutil.rmtree(local)
    if events is not None:
        events.phase("downloading")
    partial = local.with_name(name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    size = download_tree(place.remote / name, partial)
    partial.rename(local)
    logger.info("fetched %s (%d bytes) from %s to resume", name, size, place.remote)
    if events is not None:
        events.emit(EventType.STORAGE, action="download", state="downloaded", uri=str(place.remote / name), bytes=size)
    return local


@contextlib.contextmanager
def writable(target: str | Path, settings: EngineSettings, events: EventWriter | None = None) -> Iterator[OutputPlace]:
    """A local place for an output named ``target`` (a file or a folder); when ``target`` is a bucket location,
    what was written there is uploaded once the block ends without an error."""
    place = output_place(target, settings)
    if place.remote is not None:
        place.local.parent.mkdir(parents=True, exist_ok=True)
    yield place
    if place.remote is None:
        return
    if events is not None:
        events.phase("uploading")
    uploader = Uploader(retry_seconds=settings.upload_retry_seconds, report=upload_reporter(events))
    try:
        uploader.submit(place.local, place.remote, marker=place.local.is_dir())
        uploader.wait()
    finally:
        uploader.close()


def upload_reporter(events: EventWriter | None) -> Report:
    """The uploader's reports as ``storage`` events (``action: upload``)."""

    def report(**fields: object) -> None:
        if events is not None:
            events.emit(EventType.STORAGE, action="upload", **fields)

    return report
