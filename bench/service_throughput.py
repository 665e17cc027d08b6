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
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.loadgen import Request, Result, closed_loop, open_loop  # noqa: E402
from bench.service_servers import SERVERS, cpu_seconds, database, prepare_api, serve  # noqa: E402
from bench.sse_fanout import sse_fanout  # noqa: E402

RESULTS = REPO_ROOT / "bench" / "results" / "service.json"


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
        token, body, model = prepare_api(database_url, args.workdir)
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
