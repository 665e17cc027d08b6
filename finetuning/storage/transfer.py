"""Moving whole files and folders between local disk and a bucket (boto3's managed transfers: multipart, parallel
parts, each part retried by botocore)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from finetuning.contract import UPLOAD_MARKER
from finetuning.storage.client import StorageError, client, list_objects, storage_error
from finetuning.storage.uri import InvalidUri, S3Uri, normalise_key


def transfer_config(*, download: bool = False) -> Any:
    from boto3.s3.transfer import TransferConfig

    # Uploads: boto3's defaults (8 MiB parts, 10 at once, the part size grown for objects beyond 10,000 parts), the
    # fastest in bench/storage_throughput.py. Downloads: 64 MiB ranges, 8 at once: a tenth of the requests for a
    # multi-GB shard, and measured several times faster there.
    if download:
        return TransferConfig(multipart_threshold=64 * 2**20, multipart_chunksize=64 * 2**20, max_concurrency=8)
    return TransferConfig()


def upload_file(path: Path, uri: S3Uri) -> None:
    try:
        client().upload_file(str(path), uri.bucket, uri.key, Config=transfer_config())
    except Exception as exc:
        raise storage_error(exc, uri) from None


def upload_tree(folder: Path, uri: S3Uri, *, marker: bool, skip: set[str] | None = None) -> int:
    """Every file below ``folder`` to the same layout below ``uri``, then the marker (when asked); files named in
    ``skip`` (relative paths, already uploaded) are not sent again, and each sent one is added to it. Returns bytes.

    The files go up together through one transfer manager (a checkpoint's many small files cost one thread pool, not
    one each); the marker only once every file is confirmed."""
    from boto3.s3.transfer import create_transfer_manager

    done = skip if skip is not None else set()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != UPLOAD_MARKER)
    pending = [(path, path.relative_to(folder).as_posix()) for path in files]
    pending = [(path, relative) for path, relative in pending if relative not in done]
    sent = 0
    failure: tuple[Exception, S3Uri] | None = None
    with create_transfer_manager(client(), transfer_config()) as manager:
        futures = [
            (path, relative, manager.upload(str(path), uri.bucket, (uri / relative).key)) for path, relative in pending
        ]
        for path, relative, future in futures:
            try:
                future.result()
            except Exception as exc:  # the others finish (or fail) too; what went up is not sent again on a retry
                failure = failure or (exc, uri / relative)
                continue
            done.add(relative)
            sent += path.stat().st_size
    if failure is not None:
        raise storage_error(*failure) from None
    if marker:
        listing = {p.relative_to(folder).as_posix(): p.stat().st_size for p in files}
        body = json.dumps({"files": listing, "uploaded_at": time.time()}).encode()
        try:
            client().put_object(Bucket=uri.bucket, Key=(uri / UPLOAD_MARKER).key, Body=body)
        except Exception as exc:
            raise storage_error(exc, uri / UPLOAD_MARKER) from None
    return sent


def download_file(uri: S3Uri, target: Path, callback: Any = None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        client().download_file(
            uri.bucket, uri.key, str(target), Callback=callback, Config=transfer_config(download=True)
        )
    except Exception as exc:
        raise storage_error(exc, uri) from None


def folder_relative(uri: S3Uri, key: str) -> str:
    """Where the object ``key`` (listed below ``uri``) lands in a local folder mirroring ``uri``: its path relative to
    that folder, or "" for a "folder" placeholder object (``sub/``). Object keys are not normalised by the server: a
    key with an empty, ``.`` or ``..`` segment (``a//b``, ``a/../../b``) would make an absolute path or climb out of
    the folder, so it is refused."""
    relative = S3Uri(uri.bucket, key).relative_to(uri)
    if not relative or relative.endswith("/"):
        return ""
    try:
        clean = normalise_key(relative)
    except InvalidUri:
        clean = ""
    if clean != relative:
        raise StorageError(
            f"{uri}: the object key '{key}' has an empty, '.' or '..' path segment: it cannot be downloaded into a "
            "folder (rename or delete that object)",
            "storage_error",
        )
    return relative


def download_tree(uri: S3Uri, folder: Path) -> int:
    """Every object below ``uri`` into the same layout below ``folder``; returns bytes."""
    objects = [(info, folder_relative(uri, info.key)) for info in list_objects(uri)]  # all refused before any write
    size = 0
    for info, relative in objects:
        if relative:
            download_file(S3Uri(uri.bucket, info.key), folder / relative)
            size += info.size
    return size
