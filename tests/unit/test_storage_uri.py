"""``s3://`` locations: parsing, key normalisation and confinement, with no server."""

from __future__ import annotations

import pytest

from finetuning.contract import UPLOAD_MARKER, last_uploaded_checkpoint
from finetuning.storage import InvalidUri, S3Uri, is_remote


@pytest.mark.parametrize(
    ("value", "bucket", "key"),
    [
        ("s3://data/a/b.jsonl", "data", "a/b.jsonl"),
        ("s3://data//a///b/", "data", "a/b"),
        ("s3://data/a/./b", "data", "a/b"),
        ("s3://data/a/x/../b", "data", "a/b"),
        ("s3://data", "data", ""),
        ("S3://data/k", "data", "k"),
    ],
)
def test_keys_are_normalised(value: str, bucket: str, key: str) -> None:
    assert S3Uri.parse(value) == S3Uri(bucket, key)


@pytest.mark.parametrize(
    "value",
    [
        "s3://data/../x",
        "s3://data/a/../../x",
        "s3://Bad_Bucket/x",
        "s3://ab/x",
        "s3://data/a\\b",
        "/local/path",
        "s3://key:secret@data/x",
    ],
)
def test_unusable_locations(value: str) -> None:
    with pytest.raises(InvalidUri) as error:
        S3Uri.parse(value)
    assert "hunter2pw" not in str(error.value)


def test_confinement_is_by_whole_segments() -> None:
    root = S3Uri.parse("s3://data/inputs")
    assert S3Uri.parse("s3://data/inputs/x.jsonl").is_within(root)
    assert S3Uri.parse("s3://data/inputs").is_within(root)
    assert not S3Uri.parse("s3://data/inputs2/x.jsonl").is_within(root)
    assert not S3Uri.parse("s3://data/secret/x").is_within(root)
    assert not S3Uri.parse("s3://other/inputs/x").is_within(root)
    assert not S3Uri.parse("s3://data/inputs/../secret/x").is_within(root)
    assert S3Uri.parse("s3://data/any/thing").is_within(S3Uri.parse("s3://data"))


def test_joining_stays_below() -> None:
    root = S3Uri.parse("s3://data/artifacts")
    assert str(root / "job" / "output") == "s3://data/artifacts/job/output"
    assert (root / "job").relative_to(root) == "job"
    with pytest.raises(InvalidUri):
        root / "../elsewhere"


def test_is_remote() -> None:
    assert is_remote("s3://b/k")
    assert not is_remote("/s3://b")
    assert not is_remote("org/model")
    assert not is_remote(None)


def test_the_newest_uploaded_checkpoint_is_one_with_its_marker() -> None:
    keys = [
        "checkpoint-2/adapter_model.safetensors",
        f"checkpoint-2/{UPLOAD_MARKER}",
        "checkpoint-10/adapter_model.safetensors",
        f"checkpoint-10/{UPLOAD_MARKER}",
        "checkpoint-30/adapter_model.safetensors",  # cut off while uploading: no marker
        f"checkpoint-final/{UPLOAD_MARKER}",
        f"nested/checkpoint-40/{UPLOAD_MARKER}",
    ]
    assert last_uploaded_checkpoint(keys) == "checkpoint-10"  # by number, not by name; never the half-uploaded one
    assert last_uploaded_checkpoint(keys[:1]) is None
