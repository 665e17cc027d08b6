"""Submitting a job that asks for several nodes: where it will run and how its batch is split are on the job
(``resolved``); a service without a Ray cluster refuses it with a 422 naming ``nodes``; a Ray cluster that does not
answer is a quick 503, nothing queued."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from finetuning.tiny import tiny_chat_records, write_jsonl
from jobcore.db import session_scope
from jobcore.models import Job
from jobcore.settings import ServiceSettings
from tests.ray_cluster import free_port
from tests.service.api_helpers import Caller, assert_error, sft_body


def client_for(settings: ServiceSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def without_ray(settings: ServiceSettings) -> Iterator[TestClient]:
    yield from client_for(settings)


@pytest.fixture
def unreachable_ray(settings: ServiceSettings) -> Iterator[TestClient]:
    # a port nothing listens on: connection refused at once
    yield from client_for(settings.model_copy(update={"ray_address": f"http://127.0.0.1:{free_port()}"}))


def body(tiny_model_dir: Path, data_dir: Path, total: int = 8) -> dict[str, object]:
    data = write_jsonl(tiny_chat_records(8), data_dir / "ray-submit.jsonl")
    config = sft_body(tiny_model_dir, data)
    config["batchsize_conf"] = {"total_train_batch_size": total, "max_per_device_train_batch_size": 2}
    return config


def queued_jobs(settings: ServiceSettings, project: str) -> int:
    with session_scope(settings.database_url) as session:
        return session.query(Job).filter_by(project=project).count()


def test_one_node_runs_locally_and_says_how_its_batch_is_split(
    without_ray: TestClient, settings: ServiceSettings, tiny_model_dir: Path, data_dir: Path, enqueued: list[object]
) -> None:
    caller = Caller(without_ray, settings)
    response = caller.post("/v1/jobs/sft?processes=2", body(tiny_model_dir, data_dir))
    assert response.status_code == 201, response.text
    resolved = response.json()["resolved"]
    assert resolved["executor"] == "local"
    assert (resolved["nodes"], resolved["processes_per_node"], resolved["world_size"]) == (1, 2, 2)
    # total 8 over 2 processes with at most 2 a device: 2 a device, 2 accumulation steps
    assert resolved["per_device_train_batch_size"] == 2
    assert resolved["gradient_accumulation_steps"] == 2
    assert resolved["total_train_batch_size"] == 8


def test_several_nodes_without_a_ray_cluster_is_a_422_naming_nodes(
    without_ray: TestClient, settings: ServiceSettings, tiny_model_dir: Path, data_dir: Path, enqueued: list[object]
) -> None:
    caller = Caller(without_ray, settings)
    response = caller.post("/v1/jobs/sft?nodes=2", body(tiny_model_dir, data_dir))
    error = assert_error(response, 422, "multi_node_unavailable", "nodes")
    assert "FINETUNING_RAY_ADDRESS" in error["message"]
    assert queued_jobs(settings, caller.project) == 0
    assert enqueued == []


def test_a_total_batch_that_the_world_size_does_not_divide_is_a_422(
    without_ray: TestClient, settings: ServiceSettings, tiny_model_dir: Path, data_dir: Path, enqueued: list[object]
) -> None:
    caller = Caller(without_ray, settings)
    response = caller.post("/v1/jobs/sft?processes=3", body(tiny_model_dir, data_dir, total=8))
    assert_error(response, 422, "invalid_config", "batchsize_conf.total_train_batch_size")


def test_an_unreachable_ray_cluster_is_a_quick_503_and_nothing_is_queued(
    unreachable_ray: TestClient, settings: ServiceSettings, tiny_model_dir: Path, data_dir: Path, enqueued: list[object]
) -> None:
    caller = Caller(unreachable_ray, settings)
    started = time.monotonic()
    response = caller.post("/v1/jobs/sft?nodes=2&processes=1", body(tiny_model_dir, data_dir))
    elapsed = time.monotonic() - started
    error = assert_error(response, 503, "ray_unavailable")
    assert response.headers["Retry-After"]
    assert "does not answer" in error["message"]
    assert elapsed < 10, f"the refusal took {elapsed:.1f} s"
    assert queued_jobs(settings, caller.project) == 0
    assert enqueued == []
    # a one-node job does not need the cluster: it is taken
    local = caller.post("/v1/jobs/sft", body(tiny_model_dir, data_dir))
    assert local.status_code == 201, local.text
    assert local.json()["resolved"]["executor"] == "local"
