"""The OpenAPI document kept in ``openapi/openapi.json`` and the Python client generated from it (``clients/python``):
both current, and the generated client submits an SFT job to the real service (uvicorn, Postgres, Redis, a Celery
worker, the tiny model), reads it back, lists it, waits for it and reads its events."""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from jobcore.settings import ServiceSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENT_ROOT = REPO_ROOT / "clients" / "python"
ERROR_REF = "#/components/schemas/ErrorResponse"


def _export_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_openapi", REPO_ROOT / "scripts" / "export_openapi.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_openapi_document_is_current() -> None:
    export = _export_script()
    committed = export.OPENAPI_JSON.read_text(encoding="utf-8") if export.OPENAPI_JSON.exists() else ""
    assert export.render(export.openapi_document()) == committed, (
        f"openapi/openapi.json is {export.STALE} (python scripts/export_openapi.py --generate-client)"
    )
    assert export.main(["--check"]) == 0


def test_generated_client_is_current() -> None:
    # a fresh generation from the committed document (about a second) must give the committed client, file for file
    stale = _export_script().stale_client_files()
    assert stale == [], f"clients/python is stale: run make openapi; differing files: {stale}"


def test_document_names_read_naturally() -> None:
    import json

    doc = json.loads(_export_script().OPENAPI_JSON.read_text(encoding="utf-8"))
    names = set(doc["components"]["schemas"])
    assert {"SFTConfig", "DPOConfig", "GenerateConfig", "JobRead", "JobPage", "EventPage", "ErrorResponse"} <= names
    assert not {n for n in names if n.startswith("Body_") or "ValidationError" in n}
    operations = {op["operationId"]: op for path in doc["paths"].values() for op in path.values()}
    for op in operations.values():
        for status, response in op["responses"].items():
            if int(status) >= 400:  # 422 included: the API's own envelope, never FastAPI's HTTPValidationError
                assert response["content"] == {"application/json": {"schema": {"$ref": ERROR_REF}}}
    package = CLIENT_ROOT / "silogen_finetuning_client"
    modules = {p.stem for p in (package / "models").glob("*.py")}
    assert not {m for m in modules if "type_0" in m or "type_1" in m or "response_200" in m}
    assert {p.stem for p in (package / "api" / "jobs").glob("*.py")} >= {
        "submit_sft_job", "get_job", "list_jobs", "cancel_job",
    }  # fmt: skip
    assert {p.stem for p in (package / "api" / "events").glob("*.py")} >= {
        "list_job_events", "stream_job_events", "get_job_logs", "get_job_metrics", "get_job_output",
    }  # fmt: skip


# ---------------------------------------------------------------- the generated client against the real service


@pytest.fixture(scope="module")
def client_package() -> ModuleType:
    """The committed generated client, imported from clients/python (no install needed)."""
    if str(CLIENT_ROOT) not in sys.path:
        sys.path.insert(0, str(CLIENT_ROOT))
    import silogen_finetuning_client

    assert Path(silogen_finetuning_client.__file__).is_relative_to(CLIENT_ROOT)
    return silogen_finetuning_client


@pytest.fixture(scope="module")
def api_client(base_url: str, settings: ServiceSettings, client_package: ModuleType) -> Iterator[Any]:
    from api.admin import create_token
    from jobcore.db import session_scope

    with session_scope(settings.database_url) as session:
        _, token = create_token(session, "openapi-client", "generated client test")
    client = client_package.AuthenticatedClient(base_url=base_url, token=token, raise_on_unexpected_status=True)
    with client as open_client:
        yield open_client


@pytest.mark.slow
def test_generated_client_submits_and_reads_back(
    api_client: Any, client_package: ModuleType, tiny_model_dir: Path, data_dir: Path
) -> None:
    from silogen_finetuning_client.api.events import get_job_logs, get_job_metrics, list_job_events
    from silogen_finetuning_client.api.jobs import get_job, list_jobs, submit_sft_job
    from silogen_finetuning_client.models import (
        BatchsizeConf,
        ConcatenationInput,
        DataConf,
        DatasetRef,
        ErrorResponse,
        EventPage,
        GenericPeftConf,
        GenericPeftConfPeftKwargs,
        JobMetrics,
        JobPage,
        JobRead,
        NoneInput,
        RunConf,
        SFTArgs,
        SFTConfig,
        SFTTrainingArgs,
    )

    from finetuning.tiny import tiny_chat_records, write_jsonl

    data = write_jsonl(tiny_chat_records(16), data_dir / "openapi-client.jsonl")
    config = SFTConfig(
        data_conf=DataConf(
            chat_template_name="chat-ml",
            training_data=ConcatenationInput(datasets=[DatasetRef(path=str(data))]),
            validation_data=NoneInput(),
        ),
        training_args=SFTTrainingArgs(
            max_steps=4, learning_rate=1e-2, logging_steps=1, save_strategy="no", use_cpu=True, report_to=[]
        ),
        batchsize_conf=BatchsizeConf(total_train_batch_size=4, max_per_device_train_batch_size=4),
        peft_conf=GenericPeftConf(
            peft_type="LORA",
            peft_kwargs=GenericPeftConfPeftKwargs.from_dict({"r": 4, "lora_alpha": 8, "target_modules": "all-linear"}),
        ),
        run_conf=RunConf(model=str(tiny_model_dir)),
        sft_args=SFTArgs(max_seq_length=128),
    )

    # a config the engine rejects: the documented 422 envelope, parsed into the generated ErrorResponse
    bad = SFTConfig.from_dict(
        {**config.to_dict(), "batchsize_conf": {"total_train_batch_size": 0, "max_per_device_train_batch_size": 4}}
    )
    rejected = submit_sft_job.sync_detailed(client=api_client, body=bad)
    assert rejected.status_code == 422
    assert isinstance(rejected.parsed, ErrorResponse)
    assert rejected.parsed.error.code == "invalid_config"
    assert rejected.parsed.error.param == "batchsize_conf.total_train_batch_size"

    submitted = submit_sft_job.sync_detailed(
        client=api_client, body=config, name="generated-client", label=["source=openapi"]
    )
    assert submitted.status_code == 201, submitted.content
    job = submitted.parsed
    assert isinstance(job, JobRead)
    assert job.kind == "sft"
    assert job.status in ("queued", "running")
    assert job.name == "generated-client"
    assert job.labels.to_dict() == {"source": "openapi"}
    assert job.config["training_args"]["max_steps"] == 4

    read = get_job.sync(job.id, client=api_client)
    assert isinstance(read, JobRead)
    assert (read.id, read.kind, read.name, read.created_at) == (job.id, "sft", "generated-client", job.created_at)

    page = list_jobs.sync(client=api_client, kind="sft")
    assert isinstance(page, JobPage)
    assert [j.id for j in page.data] == [job.id]  # the token's project holds this one job
    assert page.next_ is None  # `next` on the wire
    assert list_jobs.sync(client=api_client, status="failed").data == []

    missing = get_job.sync_detailed("no-such-job", client=api_client)
    assert missing.status_code == 404
    assert isinstance(missing.parsed, ErrorResponse)
    assert missing.parsed.error.code == "not_found"

    deadline = time.monotonic() + 180
    while (read := get_job.sync(job.id, client=api_client)).status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"job {job.id} stuck in {read.status}"
        time.sleep(0.3)
    assert read.status == "succeeded", read.error
    assert read.error is None
    assert read.attempt == 1
    assert read.progress.step == 4
    assert read.progress.percent == pytest.approx(100)
    assert read.started_at is not None
    assert read.finished_at is not None
    assert read.finished_at >= read.started_at >= read.created_at

    events = list_job_events.sync(job.id, client=api_client, after=0, limit=1000)
    assert isinstance(events, EventPage)
    ids = [event.id for event in events.data]
    assert ids == sorted(set(ids))
    types = [event.type_ for event in events.data]  # `type` on the wire
    assert {"job", "run_started", "metrics", "status"} <= set(types)
    statuses = [event.data["status"] for event in events.data if event.type_ == "job"]
    assert statuses[0] == "queued"
    assert statuses[-1] == "succeeded"
    training = [e.data for e in events.data if e.type_ == "metrics" and e.data["loss"] is not None]  # not the summary
    losses = {data["step"]: data["loss"] for data in training}
    assert list(losses) == [1, 2, 3, 4]
    assert losses[4] < losses[1]
    later = list_job_events.sync(job.id, client=api_client, after=ids[-1])
    assert later.data == []

    log = get_job_logs.sync(job.id, client=api_client)
    assert isinstance(log, str)
    assert log.strip()
    no_log = get_job_logs.sync_detailed("no-such-job", client=api_client)  # a text route: its errors are JSON too
    assert no_log.status_code == 404
    assert isinstance(no_log.parsed, ErrorResponse)
    assert no_log.parsed.error.code == "not_found"

    metrics = get_job_metrics.sync(job.id, client=api_client)
    assert isinstance(metrics, JobMetrics)
    assert {point.step: point.value for point in metrics.train["loss"]} == pytest.approx(losses)
