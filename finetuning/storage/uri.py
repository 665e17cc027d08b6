"""``s3://bucket/key`` locations: parsed, normalised and compared without any network or SDK.

A key is normalised before anything looks at it (``a//b`` and ``a/./b`` are ``a/b``; ``..`` is resolved, and one that
climbs above the bucket is an error), so a prefix check on the normalised key is a confinement check."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

SCHEME = "s3://"
# S3's own rule for bucket names (3-63 characters, lower case, digits, dots and hyphens), so a typo fails here
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


class InvalidUri(ValueError):
    """Not a usable ``s3://bucket/key``; the message says why."""


def is_remote(value: object) -> bool:
    """Whether ``value`` names a bucket location (``s3://...``) rather than a local path or a hub id."""
    return isinstance(value, str) and value[:5].lower() == SCHEME


@dataclass(frozen=True, order=True)
class S3Uri:
    """A bucket and a normalised key (no leading or trailing ``/``; empty for the bucket itself)."""

    bucket: str
    key: str = ""

    @classmethod
    def parse(cls, value: str) -> S3Uri:
        if not is_remote(value):
            raise InvalidUri(f"'{value}' is not an s3://bucket/key location")
        rest = value[len(SCHEME) :]
        bucket, _, key = rest.partition("/")
        if "@" in bucket:
            # never echoed: what comes before the @ is a credential
            raise InvalidUri(
                "an s3:// location cannot carry credentials (key:secret@bucket): the service and its workers use the "
                "AWS environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or the credential chain"
            )
        if not _BUCKET.match(bucket):
            raise InvalidUri(
                f"'{bucket}' is not a valid bucket name (3-63 lower-case letters, digits, dots and hyphens)"
            )
        if "\\" in key or "\x00" in key:
            raise InvalidUri(f"'{value}': a key cannot hold a backslash or a NUL character")
        return cls(bucket, normalise_key(key))

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}" if self.key else f"{SCHEME}{self.bucket}"

    def __truediv__(self, name: str) -> S3Uri:
        """A location below this one, as ``Path / name`` is (``..`` may not climb out of this location)."""
        child = normalise_key(f"{self.key}/{name}")
        joined = S3Uri(self.bucket, child)
        if not joined.is_within(self):
            raise InvalidUri(f"'{name}' leaves {self}")
        return joined

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def prefix(self) -> str:
        """The key as a listing prefix for what lies below it (``key/``; empty for the whole bucket)."""
        return f"{self.key}/" if self.key else ""

    def is_within(self, root: S3Uri) -> bool:
        """This location is ``root`` or lies below it (whole path segments: ``data2`` is not below ``data``)."""
        if self.bucket != root.bucket:
            return False
        return not root.key or self.key == root.key or self.key.startswith(root.prefix)

    def relative_to(self, root: S3Uri) -> str:
        if not self.is_within(root):
            raise InvalidUri(f"{self} is not below {root}")
        return self.key[len(root.prefix) :] if root.key else self.key


def normalise_key(key: str) -> str:
    """``key`` without empty or ``.`` segments and with ``..`` resolved; a ``..`` above the bucket is an error."""
    parts: list[str] = []
    for part in key.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise InvalidUri(f"'{key}' climbs above the bucket with '..'")
            parts.pop()
            continue
        parts.append(part)
    normalised = "/".join(parts)
    # posixpath agrees on what is left; the explicit loop above is what refuses a climb out of the bucket
    assert normalised == "" or posixpath.normpath(normalised) == normalised
    return normalised
