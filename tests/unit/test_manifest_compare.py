"""How the API compares manifests and checks a rerun's inputs (api/manifests.py), without services."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from api.errors import ApiError
from api.manifests import differences, refuse_body, verify_inputs


def manifest(inputs: list[dict[str, Any]], **versions: str | None) -> dict[str, Any]:
    return {"inputs": inputs, "versions": {"torch": "2.13.0", **versions}, "machine": {"world_size": 1, "gpus": []}}


def file_record(path: Path, param: str = "data_conf.training_data.datasets[0].path") -> dict[str, Any]:
    data = path.read_bytes()
    return {
        "param": param,
        "value": str(path),
        "path": str(path),
        "uri": None,
        "kind": "file",
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }


def test_differences_name_inputs_versions_and_machine(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    before = manifest([file_record(tmp_path / "a")])
    assert differences(before, before) == []
    after = manifest([{**file_record(tmp_path / "a"), "sha256": "0" * 64}], torch="2.14.0")
    after["machine"] = {"world_size": 2, "gpus": [{"name": "H100"}]}
    found = differences(before, after)
    assert any("datasets[0].path" in f and "sha256" in f for f in found)
    assert "torch 2.13.0 -> 2.14.0" in found
    assert "machine.world_size 1 -> 2" in found
    assert any(f.startswith("machine.gpus") for f in found)


def test_verify_inputs_finds_changed_files_and_folders_and_skips_buckets(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text("one\n")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    folder_record = {
        "param": "run_conf.model",
        "value": str(folder),
        "path": str(folder),
        "uri": None,
        "kind": "folder",
        "files": {"config.json": {"sha256": hashlib.sha256(b"{}").hexdigest(), "bytes": 2}},
    }
    bucket = {**file_record(data, "data_conf.validation_data.datasets[0].path"), "uri": "s3://b/k"}
    recorded = manifest([file_record(data), folder_record, bucket])
    assert verify_inputs(recorded) == ([], ["data_conf.validation_data.datasets[0].path"])

    data.write_text("two\n")  # same size, another hash
    (folder / "tokenizer.json").write_text("{}")
    changed, _ = verify_inputs(recorded)
    assert [issue.param for issue in changed] == ["data_conf.training_data.datasets[0].path", "run_conf.model"]
    assert "sha256" in changed[0].message
    assert "tokenizer.json" in changed[1].message


@pytest.mark.parametrize("body", [b"", b"  ", b"{}"])
def test_a_rerun_takes_no_body(body: bytes) -> None:
    refuse_body(body, "job")


def test_a_rerun_with_a_body_is_refused_with_the_way_to_edit_it() -> None:
    with pytest.raises(ApiError) as raised:
        refuse_body(b'{"data_conf": {}}', "abc")
    assert raised.value.code == "body_not_allowed"
    assert "GET /v1/jobs/abc/manifest" in raised.value.message
