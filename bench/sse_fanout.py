"""The service benchmark's SSE fan-out: N followers of one running job, as EventSources on plain asyncio streams,
while events are committed at a steady rate; the lag from each commit to each follower."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx


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
