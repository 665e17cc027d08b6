"""Credentials: one masking rule on every way out, project secrets that are written but never read back, encrypted at
rest and scoped to their project, and credentials typed into a config moved into secrets at submission.

A canary credential is put where users put credentials (URI userinfo, token fields, an ``env_secrets`` reference) and
looked for in every answer and in the database's plaintext columns."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from security_helpers import make_token, new_project
from sqlalchemy import select, text

from finetuning.redaction import MASK, is_secret_key, redact, redact_text
from jobcore.db import session_scope
from jobcore.models import Secret
from jobcore.settings import ServiceSettings
from tests.service.api_helpers import sft_body

CANARY = "canary-Zq8vX2pL9wK4"
HUB_CANARY = "hf_" + "Canary" * 6  # a Hugging Face token's shape


class Client:
    def __init__(self, client: TestClient, settings: ServiceSettings) -> None:
        self.client = client
        self.project = new_project()
        self.headers = {"Authorization": f"Bearer {make_token(settings, self.project)}"}

    def call(self, method: str, url: str, body: Any = None) -> Any:
        return self.client.request(method, url, headers=self.headers, json=body)


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def alice(client: TestClient, settings: ServiceSettings) -> Client:
    return Client(client, settings)


@pytest.fixture
def bob(client: TestClient, settings: ServiceSettings) -> Client:
    return Client(client, settings)


def no_canary(*texts: str) -> None:
    for found in texts:
        assert CANARY not in found
        assert HUB_CANARY not in found


def database_text(settings: ServiceSettings) -> str:
    """Every plaintext column a credential could land in: jobs (config, resolved), their events, secrets' names."""
    with session_scope(settings.database_url) as session:
        rows = session.execute(text("SELECT config::text, resolved::text FROM jobs")).all()
        events = session.execute(text("SELECT data::text FROM job_events")).all()
        names = session.scalars(select(Secret.name)).all()
    return json.dumps([list(r) for r in rows] + [list(e) for e in events] + list(names))


# -- the rule ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("token", True),
        ("hf_token", True),
        ("password", True),
        ("mlflow_tracking_password", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("api_key", True),
        ("apiKey", True),
        ("private_key", True),
        ("pad_token", False),
        ("eos_token", False),
        ("max_new_tokens", False),
        ("missing_pad_token_strategy", False),
        ("tokenizer", False),
        ("num_input_tokens_seen", False),
    ],
)
def test_which_fields_hold_credentials(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_masking_keeps_what_is_not_a_credential() -> None:
    config = {
        "tracking": {"mlflow_server_uri": f"https://alice:{CANARY}@mlflow.example.org"},
        "run_conf": {"model_args": {"token": CANARY, "use_auth_token": True}},
        "data_conf": {"padding_side": "left"},
        "special": {"pad_token": "<pad>"},
        "note": f"a line with {HUB_CANARY} and Authorization: Bearer {CANARY}",
        "ref": "https://bob:${secrets.PW}@host",
    }
    masked = redact(config)
    no_canary(json.dumps(masked))
    assert masked["tracking"]["mlflow_server_uri"] == f"https://alice:{MASK}@mlflow.example.org"
    assert masked["run_conf"]["model_args"] == {"token": MASK, "use_auth_token": True}
    assert masked["special"] == {"pad_token": "<pad>"}
    assert masked["ref"] == config["ref"]  # a reference is not a credential
    assert redact_text("loss=0.5 max_new_tokens=4 password=hunter2") == f"loss=0.5 max_new_tokens=4 password={MASK}"


# -- project secrets --------------------------------------------------------------------------------------------------


def test_a_secret_is_written_never_read_back(alice: Client, settings: ServiceSettings) -> None:
    created = alice.call("POST", "/v1/secrets", {"name": "MLFLOW_PASSWORD", "value": CANARY})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "MLFLOW_PASSWORD"
    assert created.json()["updated_by"].endswith("...)")
    again = alice.call("POST", "/v1/secrets", {"name": "MLFLOW_PASSWORD", "value": "x" * 8})
    assert again.status_code == 409
    listed = alice.call("GET", "/v1/secrets")
    assert [s["name"] for s in listed.json()["data"]] == ["MLFLOW_PASSWORD"]
    read = alice.call("GET", "/v1/secrets/MLFLOW_PASSWORD")
    rotated = alice.call("PUT", "/v1/secrets/MLFLOW_PASSWORD", {"value": CANARY + "-2"})
    assert rotated.status_code == 200
    assert rotated.json()["updated_at"] >= read.json()["updated_at"]
    no_canary(created.text, listed.text, read.text, rotated.text)
    with session_scope(settings.database_url) as session:
        row = session.scalars(select(Secret).where(Secret.project == alice.project)).one()
        assert CANARY.encode() not in row.ciphertext  # encrypted at rest
    assert alice.call("DELETE", "/v1/secrets/MLFLOW_PASSWORD").status_code == 204
    assert alice.call("GET", "/v1/secrets/MLFLOW_PASSWORD").status_code == 404


@pytest.mark.parametrize("name", ["1ABC", "_JOB_X", "has space", "a" * 65, "x-y"])
def test_secret_names(alice: Client, name: str) -> None:
    answer = alice.call("POST", "/v1/secrets", {"name": name, "value": "v" * 8})
    assert answer.status_code == 422


def test_another_project_cannot_read_use_or_list_a_secret(
    alice: Client, bob: Client, model_dir: Path, data_file: Path
) -> None:
    assert alice.call("POST", "/v1/secrets", {"name": "SHARED_NAME", "value": CANARY}).status_code == 201
    assert bob.call("GET", "/v1/secrets/SHARED_NAME").status_code == 404
    assert bob.call("GET", "/v1/secrets").json()["data"] == []
    assert bob.call("PUT", "/v1/secrets/SHARED_NAME", {"value": "mine-now"}).status_code == 404
    assert bob.call("DELETE", "/v1/secrets/SHARED_NAME").status_code == 404
    body = sft_body(model_dir, data_file)
    body["tracking"] = {"mlflow_server_uri": "https://bob:${secrets.SHARED_NAME}@mlflow.example.org"}
    refused = bob.call("POST", "/v1/jobs/sft", body)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "secret_not_found"
    assert refused.json()["error"]["param"] == "tracking.mlflow_server_uri"
    assert alice.call("POST", "/v1/jobs/sft", body).status_code == 201


def test_env_secrets_name_allowed_variables_and_existing_secrets(
    alice: Client, model_dir: Path, data_file: Path
) -> None:
    alice.call("POST", "/v1/secrets", {"name": "HUB", "value": HUB_CANARY})
    body = {**sft_body(model_dir, data_file), "env_secrets": {"LD_PRELOAD": "HUB"}}
    answer = alice.call("POST", "/v1/jobs/sft", body)
    assert answer.status_code == 422
    assert answer.json()["error"]["param"] == "env_secrets.LD_PRELOAD"
    body["env_secrets"] = {"HF_TOKEN": "MISSING"}
    assert alice.call("POST", "/v1/jobs/sft", body).json()["error"]["param"] == "env_secrets.HF_TOKEN"
    body["env_secrets"] = {"HF_TOKEN": "HUB"}
    accepted = alice.call("POST", "/v1/jobs/sft", body)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["resolved"]["env_secrets"] == {"HF_TOKEN": "${secrets.HUB}"}
    no_canary(accepted.text)


# -- credentials typed inline -----------------------------------------------------------------------------------------


def test_inline_credentials_are_moved_into_job_secrets(
    alice: Client, settings: ServiceSettings, model_dir: Path, data_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    body = sft_body(model_dir, data_file)
    body["tracking"] = {"mlflow_server_uri": f"https://alice:{CANARY}@mlflow.example.org"}
    body["run_conf"]["model_args"] = {"token": HUB_CANARY}
    with caplog.at_level(logging.DEBUG):
        created = alice.call("POST", "/v1/jobs/sft", body)
    assert created.status_code == 201, created.text
    job = created.json()
    warning = job["resolved"]["warnings"][0]
    assert "moved into secrets of this job" in warning
    assert "tracking.mlflow_server_uri" in warning
    uri = job["config"]["tracking"]["mlflow_server_uri"]
    assert uri.startswith("https://alice:${secrets._JOB_")  # what the job refers to, not what was typed
    assert job["resolved"]["config"]["run_conf"]["model_args"]["token"].startswith("${secrets._JOB_")
    answers = [
        created.text,
        alice.call("GET", f"/v1/jobs/{job['id']}").text,
        alice.call("GET", "/v1/jobs").text,
        alice.call("GET", f"/v1/jobs/{job['id']}/events").text,
        alice.call("GET", "/v1/secrets").text,
    ]
    no_canary(*answers, caplog.text, database_text(settings))
    # the job's own secrets hold the values (encrypted), and are not listed with the project's named secrets
    assert alice.call("GET", "/v1/secrets").json()["data"] == []
    with session_scope(settings.database_url) as session:
        rows = session.scalars(select(Secret).where(Secret.job_id == job["id"])).all()
    assert len(rows) == 2


def test_a_bucket_location_with_keys_in_it_is_refused_without_echoing_them(
    alice: Client, model_dir: Path, data_file: Path
) -> None:
    body = sft_body(model_dir, data_file)
    body["data_conf"]["training_data"]["datasets"][0]["path"] = f"s3://AKIAIOSFODNN7EXAMPLE:{CANARY}@bucket/data.jsonl"
    answer = alice.call("POST", "/v1/jobs/sft", body)
    assert answer.status_code == 422
    no_canary(answer.text)
    assert "AKIAIOSFODNN7EXAMPLE" not in answer.text
