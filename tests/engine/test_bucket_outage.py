"""The storage server going away in the middle of a run (a proxy in front of moto's server cuts and refuses every
connection): training goes on, the checkpoint uploads are retried with back-off and complete once the server is back,
and nothing is lost."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from sft_helpers import sft_config

from finetuning.contract import UPLOAD_MARKER
from finetuning.events import read_events
from finetuning.tiny import tiny_chat_records, write_jsonl
from tests.s3server import S3Server
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
MAX_STEPS, SAVE_STEPS = 60, 10


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[TcpProxy]:
    proxy = TcpProxy(("127.0.0.1", s3_server.port))
    yield proxy
    proxy.close()


def events_so_far(path: Path) -> list[dict[str, Any]]:
    return read_events(path) if path.exists() else []


def test_uploads_wait_out_an_outage_and_training_goes_on(
    s3_bucket: str, proxy: TcpProxy, tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tiny_chat_records(16), tmp_path / "chat.jsonl")
    out = f"s3://{s3_bucket}/runs/outage"
    config = sft_config(
        tiny_model_dir,
        data,
        out,
        training_args={"max_steps": MAX_STEPS, "save_strategy": "steps", "save_steps": SAVE_STEPS},
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    events_file = tmp_path / "events.jsonl"
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": proxy.endpoint,
        "FINETUNING_STAGING_DIR": str(tmp_path / "staging"),
        "FINETUNING_STORAGE_CACHE_DIR": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    command = [
        sys.executable,
        "-m",
        "finetuning.cli",
        "--num-preprocess-workers",
        "1",
        "--events-file",
        str(events_file),
        "sft",
        str(tmp_path / "config.yaml"),
    ]
    engine = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not any(e.get("phase") == "training" for e in events_so_far(events_file)):
            assert engine.poll() is None, engine.stderr.read().decode() if engine.stderr else ""
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.05)
        proxy.down()  # before the first checkpoint is saved: every upload meets the outage
        while not any(e.get("state") == "retrying" for e in events_so_far(events_file)):
            assert time.monotonic() < deadline, "no upload was retried"
            time.sleep(0.1)
        time.sleep(3)
        proxy.up()
        code = engine.wait(timeout=240)
    finally:
        if engine.poll() is None:
            engine.kill()
    events = read_events(events_file)
    assert code == 0, events[-1]
    assert events[-1]["status"] == "succeeded"
    assert proxy.refused > 0
    first_retry = next(e["seq"] for e in events if e.get("state") == "retrying")
    metrics_after = [e["step"] for e in events if e["type"] == "metrics" and e["seq"] > first_retry]
    assert metrics_after, "training waited for the storage"
    assert max(e["step"] for e in events if e["type"] == "metrics") == MAX_STEPS
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=s3_bucket, Prefix="runs/outage/")
    stored = {item["Key"].removeprefix("runs/outage/") for page in pages for item in page.get("Contents", [])}
    for step in range(SAVE_STEPS, MAX_STEPS + 1, SAVE_STEPS):
        assert f"checkpoint-{step}/{UPLOAD_MARKER}" in stored
        assert f"checkpoint-{step}/adapter_model.safetensors" in stored
    assert "checkpoint-final/adapter_model.safetensors" in stored
    assert not list((tmp_path / "staging").glob("**/*.uploading/*"))  # confirmed uploads left no snapshot behind
