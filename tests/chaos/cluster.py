"""The whole service on this machine, every part a process the chaos suite can kill: a Postgres and a Redis of its own
(installed binaries, temporary folders, free ports), the API under uvicorn, and N Celery workers, each in its own
process group; the tiny model and a data set under an allowed root. Also the observers the checks need: a scan of
the engine processes (which job, which pid, alive when) and an SSE follower per job.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from scripts.test_services import free_port  # noqa: E402
from tests.chaos.local_redis import LocalRedis  # noqa: E402
from tests.local_postgres import LocalPostgres, migrate  # noqa: E402
from tests.workers import spawn_worker, wait_answering  # noqa: E402

T = TypeVar("T")
PROJECT = "chaos"
TERMINAL = {"succeeded", "failed", "cancelled"}


@dataclass
class ChaosSettings:
    """The service's settings for a chaos run: short leases, so that lost work is noticed in seconds."""

    lease_seconds: int = 10
    heartbeat_seconds: float = 2.0
    recovery_seconds: float = 3.0
    max_attempts: int = 1000
    workers: int = 3
    max_steps: int = 300
    save_steps: int = 10
    logging_steps: int = 2


def now() -> float:
    return time.time()


def ts(value: datetime | str | None) -> float | None:
    """A database ``created_at`` or an engine event's ISO ``time`` as a Unix time."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return value.timestamp()


@dataclass
class WorkerProc:
    name: str  # the Celery hostname, e.g. w3@chaos; jobs.worker is "<name>:<pool pid>"
    process: subprocess.Popen[bytes]
    log: Path
    started_at: float = field(default_factory=now)
    doomed: bool = False  # a fault was injected (killed, or shutting down): not a victim again

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


class Cluster:
    """Starts, restarts and kills the parts; answers questions about jobs from the database."""

    def __init__(self, root: Path, config: ChaosSettings, log_dir: Path) -> None:
        self.root = root
        self.config = config
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.postgres = LocalPostgres(root=root / "postgres")
        self.redis = LocalRedis(root=root / "redis")
        self.artifact_root = root / "artifacts"
        self.data_root = root / "data"
        self.queue = f"chaos-{secrets.token_hex(3)}"
        self.api_port = free_port()
        self.api: subprocess.Popen[bytes] | None = None
        self.api_starts = 0
        self.workers: list[WorkerProc] = []
        self.worker_count = 0
        self.lock = threading.RLock()
        self.database_url = ""
        self.token = ""
        self.model_dir: Path | None = None
        self.data_file: Path | None = None
        self._engine: Any = None
        self._celery: Any = None

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        from finetuning.tiny import cached_tiny_model, tiny_chat_records, write_jsonl

        self.model_dir = cached_tiny_model(REPO_ROOT / ".cache" / "tiny-models")
        self.artifact_root.mkdir(parents=True, exist_ok=True)
        self.data_root.mkdir(parents=True, exist_ok=True)
        self.data_file = write_jsonl(tiny_chat_records(64), self.data_root / "colors.jsonl")
        self.postgres.start()
        self.database_url = self.postgres.create_database("chaos")
        migrate(self.database_url)
        self.redis.start()
        from sqlalchemy import create_engine

        self._engine = create_engine(self.database_url, pool_pre_ping=True, pool_size=4, max_overflow=4)
        from api.admin import create_token
        from jobcore.db import session_scope

        with session_scope(self.database_url) as session:
            _, self.token = create_token(session, PROJECT, "chaos suite")
        from jobcore.db import engine_for

        engine_for(self.database_url).dispose()  # this process keeps no pooled connection across restarts
        threads = [threading.Thread(target=self.start_worker) for _ in range(self.config.workers)]
        for thread in threads:
            thread.start()
        self.start_api()
        for thread in threads:
            thread.join()

    def close(self) -> None:
        for worker in list(self.workers):
            if worker.alive:
                _kill_group(worker.process.pid, signal.SIGKILL)
                worker.process.wait()
        self.kill_engines()
        if self.api is not None and self.api.poll() is None:
            _kill_group(self.api.pid, signal.SIGKILL)
            self.api.wait()
        if self._engine is not None:
            self._engine.dispose()
        for closer in (self.redis.close, self.postgres.close):
            try:
                closer()
            except Exception as exc:  # cleanup goes on
                print(f"chaos: cleanup: {exc}", file=sys.stderr)

    def env(self) -> dict[str, str]:
        assert self.model_dir is not None
        return {
            **os.environ,
            "FINETUNING_DATABASE_URL": self.database_url,
            "FINETUNING_BROKER_URL": f"{self.redis.url}/0",
            "FINETUNING_ARTIFACT_ROOT": str(self.artifact_root),
            "FINETUNING_ALLOWED_ROOTS": json.dumps([str(self.model_dir.parent), str(self.data_root)]),
            "FINETUNING_ALLOW_HUB_MODELS": "false",
            "FINETUNING_DEFAULT_QUEUE": self.queue,
            "FINETUNING_LEASE_SECONDS": str(self.config.lease_seconds),
            "FINETUNING_HEARTBEAT_SECONDS": str(self.config.heartbeat_seconds),
            "FINETUNING_RECOVERY_SECONDS": str(self.config.recovery_seconds),
            "FINETUNING_MAX_ATTEMPTS": str(self.config.max_attempts),
            "FINETUNING_CANCEL_GRACE_SECONDS": "5",
            # a requeued job waits a back-off before it runs again (where the service has one): keep it short here
            "FINETUNING_REQUEUE_BACKOFF_SECONDS": "1",
            "FINETUNING_REQUEUE_BACKOFF_MAX_SECONDS": "2",
            # the chaos suite submits more than a person would: no per-project job limits
            "FINETUNING_MAX_QUEUED_JOBS_PER_PROJECT": "0",
            "FINETUNING_MAX_ACTIVE_JOBS_PER_PROJECT": "0",
            "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }

    # -- the API --------------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start_api(self, wait: bool = True) -> None:
        """uvicorn serving the API on ``api_port``, in its own process group."""
        self.api_starts += 1
        log = (self.log_dir / "api.log").open("ab")
        self.api = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "api.main:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.api_port),
                "--log-level",
                "warning",
            ],
            cwd=REPO_ROOT,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            self.wait_api()

    def wait_api(self, timeout: float = 60) -> float:
        """Returns when the API answers (any HTTP answer); the time it did."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1) as client:
            while time.monotonic() < deadline:
                assert self.api is not None
                if self.api.poll() is not None:
                    raise RuntimeError(f"the API exited: see {self.log_dir / 'api.log'}")
                try:
                    client.get(f"{self.base_url}/healthz")
                    return now()
                except httpx.TransportError:
                    time.sleep(0.05)
        raise RuntimeError("the API did not answer within 60 s")

    def kill_api(self) -> None:
        assert self.api is not None
        _kill_group(self.api.pid, signal.SIGKILL)
        self.api.wait()

    def client(self, timeout: float = 10) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=timeout)

    # -- workers --------------------------------------------------------------------------------------------------

    def celery(self) -> Any:
        if self._celery is None:
            from jobcore.settings import ServiceSettings
            from worker.celery_app import create_celery

            self._celery = create_celery(
                ServiceSettings(
                    database_url=self.database_url, broker_url=f"{self.redis.url}/0", default_queue=self.queue
                )
            )
        return self._celery

    def start_worker(self) -> WorkerProc:
        """A real Celery worker (prefork, concurrency 1) in its own process group; returns once it answers a ping."""
        with self.lock:
            self.worker_count += 1
            name = f"w{self.worker_count}@chaos"
        log_path = self.log_dir / f"{name.split('@')[0]}.log"
        process = spawn_worker(self.env(), self.queue, name, log_path)
        worker = WorkerProc(name, process, log_path)
        with self.lock:
            self.workers.append(worker)
        self.wait_workers([worker], timeout=120)
        return worker

    def wait_workers(self, workers: list[WorkerProc], timeout: float = 60) -> float | None:
        """The time every worker in ``workers`` (the alive ones) answered a ping; None on timeout."""
        alive = {w.name for w in workers if w.alive}
        by_name = {w.name: w for w in workers}
        pending = wait_answering(self.celery(), alive, timeout, alive=lambda name: by_name[name].alive)
        return None if pending else now()

    def live_workers(self) -> list[WorkerProc]:
        with self.lock:
            return [w for w in self.workers if w.alive]

    def worker_named(self, job_worker: str | None) -> WorkerProc | None:
        if not job_worker:
            return None
        name = job_worker.rsplit(":", 1)[0]
        with self.lock:
            for worker in self.workers:
                if worker.name == name:
                    return worker
        return None

    def kill_engines(self) -> None:
        for engine in scan_engines(self.artifact_root):
            _kill_group(engine.pid, signal.SIGKILL)

    # -- the database -----------------------------------------------------------------------------------------------

    def db(self, call: Callable[[Any], T], timeout: float = 120) -> T:
        """``call(connection)`` in a transaction, retried while the database is away (a Postgres fault)."""
        from sqlalchemy.exc import InterfaceError, OperationalError

        deadline = time.monotonic() + timeout
        while True:
            try:
                with self._engine.begin() as connection:
                    return call(connection)
            except (OperationalError, InterfaceError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def jobs(self) -> dict[str, dict[str, Any]]:
        from sqlalchemy import text

        rows = self.db(
            lambda c: c.execute(
                text("SELECT id, status, attempt, worker, phase FROM jobs WHERE project = :p"), {"p": PROJECT}
            ).all()
        )
        return {r.id: {"status": r.status, "attempt": r.attempt, "worker": r.worker, "phase": r.phase} for r in rows}

    def events(self, job_id: str, after: int = 0, types: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """The job's stored events in id order: ``{"id", "type", "data", "attempt", "created_at" (Unix time)}``."""
        from sqlalchemy import text

        sql = "SELECT id, type, data, attempt, created_at FROM job_events WHERE job_id = :j AND id > :a"
        params: dict[str, Any] = {"j": job_id, "a": after}
        if types:
            sql += " AND type = ANY(:t)"
            params["t"] = list(types)
        rows = self.db(lambda c: c.execute(text(sql + " ORDER BY id"), params).all())
        return [
            {"id": r.id, "type": r.type, "data": r.data, "attempt": r.attempt, "created_at": ts(r.created_at)}
            for r in rows
        ]

    def submit(self, body: dict[str, Any], timeout: float = 120) -> tuple[str, float]:
        """POST the job until it is accepted (201/200: retries reuse one Idempotency-Key, so never two jobs); returns
        its id and the time it was accepted. 503s and refused connections (a fault in progress) are retried."""
        key = secrets.token_hex(8)
        deadline = time.monotonic() + timeout
        last = ""
        with self.client(timeout=30) as client:
            while time.monotonic() < deadline:
                try:
                    answer = client.post("/v1/jobs/sft", json=body, headers={"Idempotency-Key": key})
                except httpx.TransportError as exc:
                    last = repr(exc)
                    time.sleep(0.3)
                    continue
                if answer.status_code in (200, 201):
                    return str(answer.json()["id"]), now()
                last = f"{answer.status_code} {answer.text[:300]}"
                if answer.status_code not in (503, 429):
                    raise RuntimeError(f"submission refused: {last}")
                time.sleep(0.5)
        raise RuntimeError(f"submission not accepted within {timeout} s: {last}")

    def sft_body(self) -> dict[str, Any]:
        c = self.config
        return {
            "data_conf": {
                "chat_template_name": "chat-ml",
                "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(self.data_file)}]},
                "validation_data": {"type": "NONE"},
            },
            "training_args": {
                "max_steps": c.max_steps,
                "learning_rate": 1e-2,
                "logging_steps": c.logging_steps,
                "save_strategy": "steps",
                "save_steps": c.save_steps,
                "save_total_limit": 2,
                "use_cpu": True,
                "report_to": [],
            },
            "batchsize_conf": {"total_train_batch_size": 8, "max_per_device_train_batch_size": 8},
            "peft_conf": {
                "peft_type": "LORA",
                "peft_kwargs": {"r": 8, "lora_alpha": 16, "target_modules": "all-linear"},
            },
            "run_conf": {"model": str(self.model_dir)},
            "sft_args": {"max_seq_length": 128, "train_on_completions_only": True},
        }

    def redis_messages(self) -> str:
        """Every message the broker holds (queued or unacknowledged), as one text to search job ids in."""
        import redis

        client: Any = redis.Redis.from_url(f"{self.redis.url}/0", socket_timeout=2)  # sync client: no awaitables
        try:
            parts: list[str] = []
            for key in client.scan_iter(match=f"{self.queue}*"):  # kombu keeps one list per priority step
                if client.type(key) == b"list":
                    parts += [v.decode(errors="replace") for v in client.lrange(key, 0, -1)]
            parts += [v.decode(errors="replace") for v in client.hvals("unacked")]
            return "\n".join(parts)
        finally:
            client.close()

    def drop_times(self) -> dict[str, list[float]]:
        """When workers dropped a message as not claimable, by job id (from their logs' local timestamps)."""
        import re

        pattern = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}):.*\[job ([0-9a-f-]+)\] not claimable", re.M)
        found: dict[str, list[float]] = {}
        with self.lock:
            logs = {w.log for w in self.workers}
        for path in logs:
            text = path.read_text(errors="replace") if path.exists() else ""
            for stamp, job_id in pattern.findall(text):
                at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
                found.setdefault(job_id, []).append(at)
        return {job_id: sorted(times) for job_id, times in found.items()}


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


# -- engine processes -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Engine:
    pid: int
    ppid: int
    job_id: str


def scan_engines(artifact_root: Path) -> list[Engine]:
    """Engine processes alive now: session leaders (the worker starts each engine in a new session) whose working
    directory is a job folder ``<artifact_root>/<job id>``. Zombies don't count (they no longer run)."""
    root = str(artifact_root)
    found: list[Engine] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2 :].split()
            state, ppid, session = fields[0], int(fields[1]), int(fields[3])
            if state in ("Z", "X") or session != pid:
                continue
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except (OSError, ValueError):
            continue
        if cwd.startswith(root + "/"):
            found.append(Engine(pid, ppid, cwd[len(root) + 1 :].split("/")[0]))
    return found


class EngineMonitor:
    """Scans the engine processes every ``interval`` s: when each was seen alive, and every moment two engines of the
    same job were alive at once (two attempts running: the worst failure there is)."""

    def __init__(self, artifact_root: Path, interval: float = 0.2) -> None:
        self.artifact_root = artifact_root
        self.interval = interval
        self.seen: dict[int, dict[str, Any]] = {}  # pid -> {job_id, first, last}
        self.overlaps: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="engine-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            at = now()
            by_job: dict[str, list[int]] = {}
            for engine in scan_engines(self.artifact_root):
                record = self.seen.setdefault(engine.pid, {"job_id": engine.job_id, "first": at, "last": at})
                record["last"] = at
                by_job.setdefault(engine.job_id, []).append(engine.pid)
            for job_id, pids in by_job.items():
                if len(pids) > 1:
                    self.overlaps.append({"job_id": job_id, "pids": sorted(pids), "time": at})


# -- SSE ----------------------------------------------------------------------------------------------------------


class SseFollower:
    """Follows one job's events over SSE from its start to its end, reconnecting with ``Last-Event-ID`` after every
    drop (an API restart, a database outage), as a browser's EventSource would. ``received`` must end up equal to the
    job's stored events: each once, in order."""

    def __init__(self, cluster: Cluster, job_id: str) -> None:
        self.cluster = cluster
        self.job_id = job_id
        self.received: list[int] = []
        self.connects: list[float] = []
        self.drops: list[float] = []
        self.done = False
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sse-{job_id[:8]}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        with self.cluster.client(timeout=60) as client:
            while not self._stop.is_set():
                try:
                    ended = self._read(client)
                except (httpx.TransportError, httpx.StreamError):
                    self.drops.append(now())
                    time.sleep(0.2)
                    continue
                if ended and self._terminal(client):
                    self.done = True
                    return
                time.sleep(0.2)

    def _read(self, client: httpx.Client) -> bool:
        """One connection; True when the server ended the stream itself."""
        headers = {"Last-Event-ID": str(self.received[-1])} if self.received else {}
        with client.stream("GET", f"/v1/jobs/{self.job_id}/events/stream", headers=headers) as stream:
            if stream.status_code != 200:
                stream.read()
                if stream.status_code != 503:
                    self.errors.append(f"{stream.status_code}: {stream.text[:200]}")
                time.sleep(0.5)
                return False
            self.connects.append(now())
            for line in stream.iter_lines():
                if self._stop.is_set():
                    return False
                if line.startswith("id:"):
                    self.received.append(int(line.split(":", 1)[1]))
        return True

    def _terminal(self, client: httpx.Client) -> bool:
        try:
            answer = client.get(f"/v1/jobs/{self.job_id}")
        except httpx.TransportError:
            return False
        return answer.status_code == 200 and answer.json().get("status") in TERMINAL


@contextmanager
def running_cluster(root: Path, config: ChaosSettings, log_dir: Path) -> Iterator[Cluster]:
    cluster = Cluster(root, config, log_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
