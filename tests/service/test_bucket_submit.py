"""Bad bucket input is refused at submission, naming the field, before anything is queued: an object that is not
there, a model prefix without a model, a location outside the allowed bucket roots (also through ``..``), a storage
endpoint that does not answer, no credentials. No answer ever holds a credential."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from finetuning.storage import S3Uri
from finetuning.storage import client as storage_client
from jobcore.settings import ServiceSettings
from tests.s3server import AWS_ENV, S3Server, free_port, upload_folder
from tests.service.api_helpers import make_token, sft_body

SECRET = AWS_ENV["AWS_SECRET_ACCESS_KEY"]


@pytest.fixture
def bucket(settings: ServiceSettings, s3_server: S3Server, s3_bucket: str, tiny_model_dir: Path) -> str:
    upload_folder(tiny_model_dir, s3_bucket, "inputs/tiny")
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="inputs/chat.jsonl", Body=b'{"messages": []}\n')
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="inputs/not-a-model/readme.txt", Body=b"hello")
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="secret/chat.jsonl", Body=b"{}\n")
    return s3_bucket


@pytest.fixture
def client(settings: ServiceSettings, bucket: str) -> Iterator[TestClient]:
    bucket_settings = settings.model_copy(
        update={"artifact_root": S3Uri(bucket, "artifacts"), "allowed_roots": [S3Uri(bucket, "inputs")]}
    )
    with TestClient(create_app(bucket_settings), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {make_token(bucket_settings, 'bucket-submit')}"
        yield client


def submit(client: TestClient, model: str, data: str) -> Any:
    return client.post("/v1/jobs/sft", json=sft_body(model, data))


def refused(answer: Any, param: str, code: str) -> dict[str, Any]:
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["param"], error["code"]) == (param, code), error
    assert SECRET not in answer.text
    return error


DATA = "data_conf.training_data.datasets[0].path"


def test_a_bucket_job_is_accepted_with_normalised_locations(client: TestClient, bucket: str) -> None:
    answer = submit(client, f"s3://{bucket}/inputs//tiny/", f"s3://{bucket}/inputs/./chat.jsonl")
    assert answer.status_code == 201, answer.text
    config = answer.json()["resolved"]["config"]
    assert config["run_conf"]["model"] == f"s3://{bucket}/inputs/tiny"
    assert config["data_conf"]["training_data"]["datasets"][0]["path"] == f"s3://{bucket}/inputs/chat.jsonl"
    assert config["training_args"]["output_dir"] == f"s3://{bucket}/artifacts/{answer.json()['id']}/output"


def test_missing_objects_and_folders_name_the_field(client: TestClient, bucket: str) -> None:
    model = f"s3://{bucket}/inputs/tiny"
    error = refused(submit(client, model, f"s3://{bucket}/inputs/nope.jsonl"), DATA, "storage_object_not_found")
    assert "nope.jsonl" in error["message"]
    refused(
        submit(client, f"s3://{bucket}/inputs/absent", f"s3://{bucket}/inputs/chat.jsonl"),
        "run_conf.model",
        "storage_object_not_found",
    )
    error = refused(
        submit(client, f"s3://{bucket}/inputs/not-a-model", f"s3://{bucket}/inputs/chat.jsonl"),
        "run_conf.model",
        "storage_object_not_found",
    )
    assert "config.json" in error["message"]


@pytest.mark.parametrize(
    "location",
    [
        "s3://{bucket}/secret/chat.jsonl",
        "s3://{bucket}/inputs/../secret/chat.jsonl",
        "s3://other-bucket/inputs/x",
        "s3://{bucket}/inputs-2/chat.jsonl",
    ],
)
def test_a_location_outside_the_bucket_roots_is_refused(client: TestClient, bucket: str, location: str) -> None:
    error = refused(
        submit(client, f"s3://{bucket}/inputs/tiny", location.format(bucket=bucket)), DATA, "path_not_allowed"
    )
    assert "outside the allowed roots" in error["message"]


def test_a_climb_above_the_bucket_is_an_invalid_path(client: TestClient, bucket: str) -> None:
    refused(submit(client, f"s3://{bucket}/inputs/tiny", f"s3://{bucket}/../x.jsonl"), DATA, "invalid_path")


def test_an_endpoint_that_does_not_answer(client: TestClient, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setattr(storage_client, "MAX_ATTEMPTS", 1)
    monkeypatch.setattr(storage_client, "_clients", {})
    error = refused(
        submit(client, f"s3://{bucket}/inputs/tiny", f"s3://{bucket}/inputs/chat.jsonl"),
        DATA,  # the first field in the schema's order; every bucket field is named in the details
        "storage_unreachable",
    )
    assert "AWS_ENDPOINT_URL" in error["message"]


def test_no_credentials(client: TestClient, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    # nothing else in the credential chain: no files, no instance metadata
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(storage_client, "_clients", {})
    error = refused(
        submit(client, f"s3://{bucket}/inputs/tiny", f"s3://{bucket}/inputs/chat.jsonl"),
        DATA,
        "storage_credentials_missing",
    )
    assert "AWS_ACCESS_KEY_ID" in error["message"]
