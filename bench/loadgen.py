"""A small HTTP/1.1 load generator on plain asyncio streams (keep-alive connections, no client library), so that a
2-core machine spends its CPU on the server rather than on the client.

Closed loop: N connections, each sending its next request when the last one answered. Open loop: requests start at a
fixed rate whatever the answers (a late answer does not slow the arrivals), on a pool of connections. Each request
has a timeout; a timed-out request closes its connection (as a client that gives up would) and counts as such.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def encode(self, host: str) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(self.body)}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)  # seconds, of answered requests
    statuses: Counter[int | str] = field(default_factory=Counter)  # status code, or "timeout"/"error"
    seconds: float = 0.0
    slowest: float = 0.0  # including timeouts: how long the longest request was outstanding

    @property
    def answered(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, object]:
        return {
            "requests": sum(self.statuses.values()),
            "per_s": round(self.rate, 1),
            "p50_ms": round(self.percentile(0.5) * 1000, 1),
            "p99_ms": round(self.percentile(0.99) * 1000, 1),
            "max_ms": round(self.slowest * 1000, 1),
            "mean_ms": round(statistics.fmean(self.latencies) * 1000, 1) if self.latencies else None,
            "statuses": dict(sorted(self.statuses.items(), key=str)),
        }


# servers close idle keep-alive connections (uvicorn after 5 s): one idle longer is not reused, as clients do
IDLE_REUSE_SECONDS = 4.0


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def request(self, raw: bytes) -> int:
        if self.writer is not None and time.monotonic() - self.last_used > IDLE_REUSE_SECONDS:
            self.close()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.last_used = time.monotonic()
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        self.last_used = time.monotonic()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _one(connection: _Connection, raw: bytes, timeout: float, result: Result) -> None:
    started = time.perf_counter()
    try:
        status = await asyncio.wait_for(connection.request(raw), timeout)
    except TimeoutError:
        connection.close()  # a client that gives up hangs up
        result.statuses["timeout"] += 1
        result.slowest = max(result.slowest, time.perf_counter() - started)
        return
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
        connection.close()
        result.statuses["error"] += 1
        return
    elapsed = time.perf_counter() - started
    result.latencies.append(elapsed)
    result.slowest = max(result.slowest, elapsed)
    result.statuses[status] += 1


async def closed_loop(
    host: str, port: int, make: Callable[[int], Request], *, connections: int, seconds: float, timeout: float = 15.0
) -> Result:
    """``connections`` clients, each sending requests back to back for ``seconds``."""
    result = Result()
    deadline = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def client() -> None:
        connection = _Connection(host, port)
        while time.perf_counter() < deadline:
            await _one(connection, make(next(counter)).encode(host), timeout, result)
        connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    result.seconds = time.perf_counter() - started
    return result


async def open_loop(
    host: str,
    port: int,
    make: Callable[[int], Request],
    *,
    rate: float,
    seconds: float,
    timeout: float = 15.0,
    max_connections: int = 1000,
) -> Result:
    """Requests started every 1/``rate`` seconds for ``seconds``; each on an idle connection (or a new one)."""
    result = Result()
    idle: list[_Connection] = []
    live = 0
    tasks: list[asyncio.Task[None]] = []

    async def send(index: int) -> None:
        nonlocal live
        connection = idle.pop() if idle else None
        if connection is None:
            if live >= max_connections:
                result.statuses["no connection"] += 1
                return
            live += 1
            connection = _Connection(host, port)
        await _one(connection, make(index).encode(host), timeout, result)
        idle.append(connection)

    started = time.perf_counter()
    total = int(rate * seconds)
    for index in range(total):
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(index)))
    await asyncio.gather(*tasks)
    result.seconds = seconds
    for connection in idle:
        connection.close()
    return result


async def burst(host: str, port: int, make: Callable[[int], Request], *, at_once: int, timeout: float = 15.0) -> Result:
    """``at_once`` requests started together, each on its own new connection."""
    result = Result()
    started = time.perf_counter()
    connections = [_Connection(host, port) for _ in range(at_once)]
    await asyncio.gather(*(_one(c, make(i).encode(host), timeout, result) for i, c in enumerate(connections)))
    for connection in connections:
        connection.close()
    result.seconds = time.perf_counter() - started
    return result
