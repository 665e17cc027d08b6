"""The one S3 client of a process (boto3), and the translation of its failures into errors people can act on.

Endpoint, region and credentials come only from the standard AWS environment variables and credential chain
(``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL_S3``,
``AWS_DEFAULT_REGION``, profiles, instance roles), never from a config. No message built here holds a credential."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from finetuning.errors import FinetuningError
from finetuning.storage.uri import S3Uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

_lock = threading.Lock()
_clients: dict[tuple[str | None, ...], Any] = {}

# botocore's own retries (standard mode: exponential back-off with jitter, on throttling and transient errors);
# callers that must survive a longer outage (checkpoint uploads) retry around them
MAX_ATTEMPTS = 5
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60


class StorageError(FinetuningError):
    """A bucket operation failed; ``code`` says how: ``storage_object_not_found``, ``storage_access_denied``,
    ``storage_credentials_missing``, ``storage_unreachable`` or ``storage_error``."""

    def __init__(self, message: str, code: str = "storage_error", param: str | None = None) -> None:
        super().__init__(message, code, param)


def client() -> S3Client:
    """The process's S3 client for the current environment (one per endpoint/region/credentials; thread-safe)."""
    key = tuple(
        os.environ.get(name)
        for name in (
            "AWS_ENDPOINT_URL_S3",
            "AWS_ENDPOINT_URL",
            "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_PROFILE",
        )
    )
    with _lock:
        if key not in _clients:
            _clients[key] = _make_client()
        return _clients[key]


def _make_client() -> S3Client:
    import boto3
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config = Config(
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        # Path-style addressing when an endpoint is configured: MinIO and similar servers are reached by a host
        # name that has no per-bucket DNS entries. Checksums only where the API requires them: GCS's S3 interop and
        # older MinIO refuse the CRC headers botocore sends by default.
        s3={"addressing_style": "path" if endpoint else "auto"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=32,
    )
    session = boto3.session.Session()
    return session.client("s3", config=config, region_name=session.region_name or "us-east-1")


def storage_error(exc: BaseException, uri: S3Uri | str, param: str | None = None) -> StorageError:
    """``exc`` (raised by boto3 for ``uri``) as a :class:`StorageError` that says what to do."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return StorageError(
            f"no credentials for {uri}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile or role) "
            "where the service and its workers run",
            "storage_credentials_missing",
            param,
        )
    if isinstance(exc, EndpointConnectionError):
        return StorageError(
            f"the storage endpoint for {uri} cannot be reached: check AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3",
            "storage_unreachable",
            param,
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchKey", "NotFound", "404") or status == 404:
            what = "bucket" if code == "NoSuchBucket" else "object"
            return StorageError(f"{uri}: no such {what}", "storage_object_not_found", param)
        if code == "NoSuchBucket":
            return StorageError(f"{uri}: no such bucket", "storage_object_not_found", param)
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden") or status == 403:
            return StorageError(
                f"{uri}: access denied ({code}): the service's credentials may not read or write it",
                "storage_access_denied",
                param,
            )
        return StorageError(f"{uri}: the storage server answered {code or status}", "storage_error", param)
    name = type(exc).__name__
    if "Connect" in name or "Timeout" in name or isinstance(exc, ConnectionError | TimeoutError):
        return StorageError(
            f"the storage endpoint for {uri} did not answer ({name}): check AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3",
            "storage_unreachable",
            param,
        )
    return StorageError(f"{uri}: {name}", "storage_error", param)


@dataclass(frozen=True)
class ObjectInfo:
    """What identifies one stored object's content: a new upload changes its ETag (and usually its size)."""

    key: str
    size: int
    etag: str
    modified: float | None = None  # seconds since the epoch (listings give it)


def head(uri: S3Uri) -> ObjectInfo:
    """The object at ``uri``; a :class:`StorageError` when it is missing or unreadable."""
    try:
        answer = client().head_object(Bucket=uri.bucket, Key=uri.key)
    except Exception as exc:
        raise storage_error(exc, uri) from None
    return ObjectInfo(uri.key, int(answer["ContentLength"]), str(answer["ETag"]).strip('"'))


def list_objects(uri: S3Uri, *, limit: int | None = None) -> Iterator[ObjectInfo]:
    """Every object below ``uri`` (the whole prefix, not only its first level), in key order."""
    paginator = client().get_paginator("list_objects_v2")
    seen = 0
    try:
        for page in paginator.paginate(Bucket=uri.bucket, Prefix=uri.prefix):
            for item in page.get("Contents", []):
                modified = item.get("LastModified")
                yield ObjectInfo(
                    str(item["Key"]),
                    int(item["Size"]),
                    str(item["ETag"]).strip('"'),
                    modified.timestamp() if modified is not None else None,
                )
                seen += 1
                if limit is not None and seen >= limit:
                    return
    except Exception as exc:
        raise storage_error(exc, uri) from None


def exists(uri: S3Uri) -> bool:
    try:
        head(uri)
    except StorageError as exc:
        if exc.code == "storage_object_not_found":
            return False
        raise
    return True


def delete_prefix(uri: S3Uri) -> int:
    """Delete every object below ``uri`` (batches of 1000, the API's limit); returns how many."""
    keys = [info.key for info in list_objects(uri)]
    try:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            client().delete_objects(Bucket=uri.bucket, Delete={"Objects": batch, "Quiet": True})
    except Exception as exc:
        raise storage_error(exc, uri) from None
    return len(keys)


def get_bytes(uri: S3Uri) -> bytes:
    """The whole object at ``uri`` (for small files: a generate job's answers)."""
    try:
        return bytes(client().get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read())
    except Exception as exc:
        raise storage_error(exc, uri) from None
