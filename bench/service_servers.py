"""The service benchmark's stage: a throwaway Postgres database, the apps under uvicorn (with the CPU time their
processes use), and the API's setup: schema, a token, the tiny model and the SFT body every submission sends."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def database(server: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"finetuning_bench_{secrets.token_hex(4)}"
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{server}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a server and its worker processes so far."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


SERVERS: dict[int, int] = {}  # port -> pid


@contextmanager
def serve(app: str, env: dict[str, str], workers: int, log: Path) -> Iterator[int]:
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", app, "--port", str(port), "--workers", str(workers)]
    command += ["--timeout-graceful-shutdown", "5", "--log-level", "warning", "--no-access-log"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
                    break
                except httpx.HTTPError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{app} did not start; see {log}") from None
                    time.sleep(0.2)
            SERVERS[port] = process.pid
            yield port
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def prepare_api(database_url: str, workdir: Path) -> tuple[str, bytes, Path]:
    from api.admin import create_token
    from api.serve import upgrade_database
    from finetuning.tiny import cached_tiny_model
    from jobcore.db import session_scope

    upgrade_database(database_url)
    with session_scope(database_url) as session:
        token = create_token(session, "bench", "bench")[1]
    model = cached_tiny_model(REPO_ROOT / ".cache" / "tiny-models")
    data = workdir / "chat.jsonl"
    data.write_text(
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})
    )
    body = {
        "data_conf": {
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(data)}]},
            "validation_data": {"type": "NONE"},
            "chat_template_name": "chat-ml",
        },
        "training_args": {
            "max_steps": 20,
            "learning_rate": 1e-4,
            "logging_steps": 1,
            "lr_scheduler_type": "cosine",
            "warmup_steps": 2,
            "weight_decay": 0.01,
            "save_strategy": "no",
            "seed": 42,
        },
        "batchsize_conf": {"total_train_batch_size": 8, "max_per_device_train_batch_size": 4},
        "peft_conf": {
            "peft_type": "LORA",
            "peft_kwargs": {
                "r": 8,
                "lora_alpha": 16,
                "lora_dropout": 0.05,
                "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
            },
        },
        "run_conf": {"model": str(model)},
        "sft_args": {"max_seq_length": 512, "train_on_completions_only": True},
    }
    return token, json.dumps(body).encode(), model
