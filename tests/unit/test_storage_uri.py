"""``s3://`` locations: parsing, key normalisation and confinement, and which uploaded checkpoint a run resumes from,
with no server."""

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
        ("s3://data/./a/b/.", "data", "a/b"),
        ("s3://data/a/x/../b", "data", "a/b"),
        ("s3://data/a/x/y/../../b", "data", "a/b"),
        ("s3://data/a/..", "data", ""),
        ("s3://data", "data", ""),
        ("s3://data/", "data", ""),
        ("S3://data/k", "data", "k"),
        ("s3://my-data.v2/k", "my-data.v2", "k"),
        ("s3://" + "b" * 63 + "/k", "b" * 63, "k"),
    ],
)
def test_keys_are_normalised(value: str, bucket: str, key: str) -> None:
    uri = S3Uri.parse(value)
    assert uri == S3Uri(bucket, key)
    assert str(uri) == (f"s3://{bucket}/{key}" if key else f"s3://{bucket}")
    assert S3Uri.parse(str(uri)) == uri  # the written form parses back to itself


@pytest.mark.parametrize(
    "value",
    [
        "s3://data/..",
        "s3://data/../x",
        "s3://data/./../x",
        "s3://data/a/../../x",
        "s3://data//a/b/../../../x",
    ],
)
def test_a_key_cannot_climb_above_its_bucket(value: str) -> None:
    with pytest.raises(InvalidUri, match="climbs above the bucket"):
        S3Uri.parse(value)


@pytest.mark.parametrize(
    "bucket",
    [
        "Data",  # upper case
        "bad_bucket",  # underscore
        "ab",  # too short
        "b" * 64,  # too long
        "-data",
        "data-",
        ".data",
        "",
        "da ta",
    ],
)
def test_bucket_names_follow_the_s3_rule(bucket: str) -> None:
    with pytest.raises(InvalidUri, match="not a valid bucket name"):
        S3Uri.parse(f"s3://{bucket}/x")


@pytest.mark.parametrize("value", ["/local/path", "org/model", "s3:/data/x", "http://data/x", "data/x", ""])
def test_what_is_not_an_s3_location(value: str) -> None:
    assert not is_remote(value)
    with pytest.raises(InvalidUri, match="not an s3://bucket/key location"):
        S3Uri.parse(value)


@pytest.mark.parametrize("key", ["a\\b", "a\x00b"])
def test_a_key_cannot_hold_a_backslash_or_nul(key: str) -> None:
    with pytest.raises(InvalidUri):
        S3Uri.parse(f"s3://data/{key}")


def test_credentials_in_a_location_are_refused_and_never_echoed() -> None:
    with pytest.raises(InvalidUri) as error:
        S3Uri.parse("s3://AKIAEXAMPLEKEY:hunter2pw@data/x")
    assert "hunter2pw" not in str(error.value)
    assert "AKIAEXAMPLEKEY" not in str(error.value)
    assert "AWS_SECRET_ACCESS_KEY" in str(error.value)  # says where credentials go instead


def test_is_remote() -> None:
    assert is_remote("s3://b/k")
    assert is_remote("S3://b/k")
    assert not is_remote("/s3://b")
    assert not is_remote("org/model")
    assert not is_remote(None)
    assert not is_remote(b"s3://b/k")


def test_confinement_is_by_whole_segments() -> None:
    root = S3Uri.parse("s3://data/inputs")
    assert S3Uri.parse("s3://data/inputs/x.jsonl").is_within(root)
    assert S3Uri.parse("s3://data/inputs/deep/er/x").is_within(root)
    assert S3Uri.parse("s3://data/inputs").is_within(root)
    assert S3Uri.parse("s3://data/inputs/").is_within(root)
    assert not S3Uri.parse("s3://data/inputs2/x.jsonl").is_within(root)
    assert not S3Uri.parse("s3://data/inputs2").is_within(root)
    assert not S3Uri.parse("s3://data/input").is_within(root)
    assert not S3Uri.parse("s3://data/secret/x").is_within(root)
    assert not S3Uri.parse("s3://data").is_within(root)
    assert not S3Uri.parse("s3://other/inputs/x").is_within(root)
    assert not S3Uri.parse("s3://data/inputs/../secret/x").is_within(root)
    assert S3Uri.parse("s3://data/inputs/a/../x").is_within(root)
    assert S3Uri.parse("s3://data/any/thing").is_within(S3Uri.parse("s3://data"))
    assert not S3Uri.parse("s3://data2/any").is_within(S3Uri.parse("s3://data"))


def test_relative_to() -> None:
    root = S3Uri.parse("s3://data/inputs")
    assert S3Uri.parse("s3://data/inputs/a/b.jsonl").relative_to(root) == "a/b.jsonl"
    assert root.relative_to(root) == ""
    assert S3Uri.parse("s3://data/a/b").relative_to(S3Uri("data")) == "a/b"
    with pytest.raises(InvalidUri):
        S3Uri.parse("s3://data/inputs2/x").relative_to(root)


def test_joining_stays_below() -> None:
    root = S3Uri.parse("s3://data/artifacts")
    assert str(root / "job" / "output") == "s3://data/artifacts/job/output"
    assert root / "job//output/" == S3Uri("data", "artifacts/job/output")
    assert root / "./job/x/../output" == S3Uri("data", "artifacts/job/output")
    assert root / "/etc" == S3Uri("data", "artifacts/etc")  # unlike Path, a leading / does not start over
    assert (root / "job").relative_to(root) == "job"
    assert (root / "job").name == "job"
    assert (root / "job").prefix == "artifacts/job/"
    assert S3Uri("data").prefix == ""
    for name in ("..", "../elsewhere", "job/../../elsewhere", "../artifacts2/x"):
        with pytest.raises(InvalidUri, match="leaves s3://data/artifacts"):
            root / name
    with pytest.raises(InvalidUri, match="climbs above the bucket"):
        S3Uri("data") / "../other-bucket"


def test_the_newest_uploaded_checkpoint_is_one_with_its_marker() -> None:
    keys = [
        "checkpoint-2/adapter_model.safetensors",
        f"checkpoint-2/{UPLOAD_MARKER}",
        "checkpoint-10/adapter_model.safetensors",
        f"checkpoint-10/{UPLOAD_MARKER}",
        "checkpoint-30/adapter_model.safetensors",  # cut off while uploading: no marker
        "checkpoint-30/trainer_state.json",
        f"checkpoint-50/sub/{UPLOAD_MARKER}",  # a marker deeper down is not the checkpoint's
        f"checkpoint-final/{UPLOAD_MARKER}",  # not a numbered checkpoint
        f"checkpoint-x7/{UPLOAD_MARKER}",
        f"nested/checkpoint-40/{UPLOAD_MARKER}",  # not at the run's top level
        UPLOAD_MARKER,
    ]
    # by number, not by name ("checkpoint-2" sorts after "checkpoint-10"); never the half-uploaded one
    assert last_uploaded_checkpoint(keys) == "checkpoint-10"
    assert last_uploaded_checkpoint(reversed(keys)) == "checkpoint-10"
    assert last_uploaded_checkpoint(keys[:1]) is None
    assert last_uploaded_checkpoint(keys[4:]) is None
    assert last_uploaded_checkpoint([]) is None
    assert last_uploaded_checkpoint([*keys, f"checkpoint-30/{UPLOAD_MARKER}"]) == "checkpoint-30"  # once it completes
