"""The API under load, next to a bare endpoint of our own, in one run on one machine: ``make bench-service``.

Both are served as the API image serves it (uvicorn, 2 worker processes) against the same Postgres and Redis, with
the same 0.8 kB SFT body. Measured:

- submissions, closed loop (N connections back to back) and open loop (a fixed arrival rate): the real route and
  the bare anchor (``bench/bare_app.py``: token lookup, pydantic body, one INSERT, one Redis push);
- ``GET /v1/jobs/{id}`` and ``GET /v1/jobs`` (a page of 50), closed loop;
- SSE fan-out: N followers of one running job while events are committed at a steady rate; the lag from each
  event's commit to its arrival at each follower, and the followers that did not get every event;
- overload: 4x the sustainable submission rate (the closed-loop rate just measured) for a while, open loop; every
  request must be answered (201, 429 or 503) within 2 s, and full service must be back within 5 s after.

Prints a table and writes ``bench/results/service.json``. Postgres and Redis come from ``FINETUNING_TEST_POSTGRES`` /
``FINETUNING_TEST_REDIS`` (``make bench-service`` starts them when missing, as ``make test`` does).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.loadgen import Request, Result, closed_loop, open_loop  # noqa: E402

RESULTS = REPO_ROOT / "bench" / "results" / "service.json"


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


def _setup(database_url: str, workdir: Path) -> tuple[str, bytes, Path]:
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


# -- SSE fan-out -------------------------------------------------------------------------------------------------------


async def _follow(
    port: int,
    path: str,
    token: str,
    lags: list[float],
    seen: list[int],
    refusals: list[int],
    ready: asyncio.Event,
    done: asyncio.Event,
) -> None:
    """One follower, as an EventSource: refused (503, at a burst of connects), it comes back after Retry-After."""
    while True:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = (
            f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        )
        writer.write(request.encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if head.split(b" ", 2)[1] == b"200":
            break
        refusals.append(1)
        writer.close()
        await asyncio.sleep(1.0)
    buffer = ""
    count = 0
    try:
        while not done.is_set():
            chunk = await reader.read(65536)
            if not chunk:
                break
            now = time.time()
            buffer += chunk.decode("utf-8", "replace")
            *lines, buffer = buffer.split("\n")
            for line in lines:
                if line.startswith("retry:"):
                    ready.set()
                if line.startswith("data:") and '"bench_t"' in line:
                    lags.append(now - json.loads(line[5:])["bench_t"])
                    count += 1
                elif line.startswith("data:") and '"succeeded"' in line:
                    done.set()
    finally:
        seen.append(count)
        writer.close()


async def sse_fanout(
    port: int, database_url: str, token: str, body: bytes, *, followers: int, rate: float, seconds: float
) -> dict[str, Any]:
    from sqlalchemy import create_engine, text

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        job = (
            await client.post(
                "/v1/jobs/sft?queue=bench-idle",
                content=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
        ).json()
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE jobs SET status = 'running' WHERE id = :id"), {"id": job["id"]})
    lags: list[float] = []
    seen: list[int] = []
    refusals: list[int] = []
    done = asyncio.Event()
    readies = [asyncio.Event() for _ in range(followers)]
    path = f"/v1/jobs/{job['id']}/events/stream"
    tasks = [asyncio.create_task(_follow(port, path, token, lags, seen, refusals, ready, done)) for ready in readies]
    for ready in readies:
        await asyncio.wait_for(ready.wait(), 60)
    await asyncio.sleep(1.0)
    total = int(rate * seconds)

    def commit(index: int) -> None:
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO job_events (job_id, type, data, created_at) VALUES (:j, 'metrics', :d, now())"),
                {"j": job["id"], "d": json.dumps({"bench_t": time.time(), "step": index})},
            )

    started = time.perf_counter()
    for index in range(total):
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await asyncio.to_thread(commit, index)
    await asyncio.sleep(2.0)
    with engine.begin() as connection:
        connection.execute(text("UPDATE jobs SET status = 'succeeded' WHERE id = :id"), {"id": job["id"]})
        connection.execute(
            text("INSERT INTO job_events (job_id, type, data, created_at) VALUES (:j, 'job', :d, now())"),
            {"j": job["id"], "d": json.dumps({"status": "succeeded"})},
        )
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
    engine.dispose()
    ordered = sorted(lags)

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1) if ordered else float("nan")

    return {
        "followers": followers,
        "events": total,
        "deliveries": len(lags),
        "lag_p50_ms": pct(0.5),
        "lag_p99_ms": pct(0.99),
        "lag_max_ms": round(ordered[-1] * 1000, 1) if ordered else None,
        "followers_missing_events": sum(1 for count in seen if count < total),
        "connects_refused_then_retried": len(refusals),
    }


# -- the run -----------------------------------------------------------------------------------------------------------


def _settle(database_url: str) -> None:
    """After the writes: the statistics and visibility maps current, so that autovacuum does not run (and take
    one of the two CPUs) in the middle of the read measurements."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("VACUUM ANALYZE"))
        try:  # the dirty pages of the writes, flushed now rather than by a checkpoint during the reads
            connection.execute(text("CHECKPOINT"))
        except Exception as exc:  # not a superuser: the reads may share the machine with a checkpoint
            print(f"(no CHECKPOINT: {type(exc).__name__})")
    engine.dispose()


async def timed(port: int, measurement: Any) -> tuple[Result, float]:
    """Run a measurement; also the server's CPU milliseconds per answered request."""
    before = cpu_seconds(SERVERS[port])
    result = await measurement
    used = cpu_seconds(SERVERS[port]) - before
    return result, round(1000 * used / max(1, sum(result.statuses.values())), 2)


def _row(name: str, measured: tuple[Result, float], anchor: Result | None = None) -> dict[str, Any]:
    result, cpu_ms = measured
    row = {"measurement": name, **result.summary(), "server_cpu_ms": cpu_ms}
    if anchor is not None and anchor.rate:
        row["vs_bare"] = round(result.rate / anchor.rate, 2)
    return row


async def measure(
    args: argparse.Namespace, api_port: int, bare_port: int, database_url: str, token: str, body: bytes
) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {token}"}
    headers = {**auth, "Content-Type": "application/json"}
    submit = lambda _i: Request("POST", "/v1/jobs/sft?queue=bench-idle", headers, body)  # noqa: E731
    bare = lambda _i: Request("POST", "/bare/jobs", headers, body)  # noqa: E731
    rows: list[dict[str, Any]] = []
    seconds = args.seconds
    for port, make in ((bare_port, bare), (api_port, submit)):  # warm both
        await closed_loop("127.0.0.1", port, make, connections=8, seconds=2)

    bare_closed = await timed(bare_port, closed_loop("127.0.0.1", bare_port, bare, connections=64, seconds=seconds))
    api_closed = await timed(api_port, closed_loop("127.0.0.1", api_port, submit, connections=64, seconds=seconds))
    rows += [
        _row("bare submit, closed loop x64", bare_closed),
        _row("submit, closed loop x64", api_closed, bare_closed[0]),
    ]
    bare_open = await timed(bare_port, open_loop("127.0.0.1", bare_port, bare, rate=args.rate, seconds=seconds))
    api_open = await timed(api_port, open_loop("127.0.0.1", api_port, submit, rate=args.rate, seconds=seconds))
    rows += [
        _row(f"bare submit, open loop {args.rate:g}/s", bare_open),
        _row(f"submit, open loop {args.rate:g}/s", api_open, bare_open[0]),
    ]

    await asyncio.to_thread(_settle, database_url)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", headers=auth) as client:
        job_id = (await client.get("/v1/jobs?limit=1")).json()["data"][0]["id"]
    get = lambda _i: Request("GET", f"/v1/jobs/{job_id}", auth)  # noqa: E731
    rows.append(
        _row(
            "GET /v1/jobs/{id}, closed loop x16",
            await timed(api_port, closed_loop("127.0.0.1", api_port, get, connections=16, seconds=seconds)),
        )
    )
    page = lambda _i: Request("GET", "/v1/jobs?limit=50", auth)  # noqa: E731
    rows.append(
        _row(
            "GET /v1/jobs?limit=50, closed loop x8",
            await timed(api_port, closed_loop("127.0.0.1", api_port, page, connections=8, seconds=seconds)),
        )
    )

    fanout = await sse_fanout(
        api_port, database_url, token, body, followers=args.followers, rate=args.event_rate, seconds=seconds
    )

    overload_rate = 4 * api_closed[0].rate
    overload_measured = await timed(
        api_port,
        open_loop(
            "127.0.0.1",
            api_port,
            submit,
            rate=overload_rate,
            seconds=args.overload_seconds,
            timeout=10,
            max_connections=2000,
        ),
    )
    overload = overload_measured[0]
    stopped = time.perf_counter()
    recovered = None
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", headers=auth, timeout=5) as client:
        while time.perf_counter() - stopped < 30:
            try:
                answer = await client.get(f"/v1/jobs/{job_id}")
                if answer.status_code == 200:
                    recovered = time.perf_counter() - stopped
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    rows.append(
        _row(f"overload: submit at {overload_rate:.0f}/s (4x) for {args.overload_seconds:g} s", overload_measured)
    )
    return {
        "rows": rows,
        "sse": fanout,
        "overload": {
            "rate": round(overload_rate, 1),
            "answered_within_2s": sum(1 for lat in overload.latencies if lat <= 2.0),
            "requests": sum(overload.statuses.values()),
            "statuses": dict(overload.statuses),
            "full_service_after_s": None if recovered is None else round(recovered, 2),
        },
    }


def print_table(report: dict[str, Any]) -> None:
    columns = ["measurement", "per_s", "p50_ms", "p99_ms", "max_ms", "vs_bare", "server_cpu_ms", "statuses"]
    print(f"\n{report['machine']}; API: uvicorn x{report['workers']} workers, pool {report['pool']} per worker\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in report["rows"]:
        print("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    sse = report["sse"]
    print(
        f"\nSSE: {sse['followers']} followers, {sse['events']} events: lag p50 {sse['lag_p50_ms']} ms, p99 "
        f"{sse['lag_p99_ms']} ms, max {sse['lag_max_ms']} ms; followers missing events: "
        f"{sse['followers_missing_events']} (connects refused at the burst and retried: "
        f"{sse['connects_refused_then_retried']})"
    )
    over = report["overload"]
    print(
        f"overload at {over['rate']}/s: {over['answered_within_2s']} of {over['requests']} answered within 2 s "
        f"({over['statuses']}); full service {over['full_service_after_s']} s after the load stopped"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each throughput measurement")
    parser.add_argument("--rate", type=float, default=150.0, help="open-loop submissions per second")
    parser.add_argument("--followers", type=int, default=500, help="SSE followers of one job")
    parser.add_argument("--event-rate", type=float, default=10.0, help="events per second committed for them")
    parser.add_argument("--overload-seconds", type=float, default=60.0, help="how long the 4x load lasts")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (both apps)")
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / ".cache" / "bench-service")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    server = os.environ.get("FINETUNING_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
    redis_url = os.environ.get("FINETUNING_TEST_REDIS", "redis://127.0.0.1:6379") + "/14"
    with database(server) as database_url:
        token, body, model = _setup(database_url, args.workdir)
        env = {
            "FINETUNING_DATABASE_URL": database_url,
            "FINETUNING_BROKER_URL": redis_url,
            "FINETUNING_ALLOWED_ROOTS": json.dumps([str(model.parent), str(args.workdir)]),
            "FINETUNING_ARTIFACT_ROOT": str(args.workdir / "artifacts"),
            "FINETUNING_ALLOW_HUB_MODELS": "false",
            "FINETUNING_MAX_QUEUED_JOBS_PER_PROJECT": "0",
            "FINETUNING_MAX_ACTIVE_JOBS_PER_PROJECT": "0",
        }
        with (
            serve("api.main:create_app", env, args.workers, args.workdir / "api.log") as api_port,
            serve("bench.bare_app:create_app", env, args.workers, args.workdir / "bare.log") as bare_port,
        ):
            report = asyncio.run(measure(args, api_port, bare_port, database_url, token, body))
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    from jobcore.settings import ServiceSettings

    cpu = re.sub(r"\s+", " ", platform.processor() or platform.machine())
    report.update(
        machine=f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}",
        workers=args.workers,
        pool=ServiceSettings.model_fields["db_pool_size"].default,
        settings={k: v for k, v in vars(args).items() if k != "workdir"},
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    print_table(report)
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
