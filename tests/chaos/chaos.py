"""The chaos suite: the whole service (uvicorn API, several Celery worker processes, a Postgres and a Redis of its
own, see :mod:`tests.chaos.cluster`) runs tiny-model SFT jobs with checkpoints while faults are injected over and
over, then every job is checked and a table is printed (and written as JSON).

    make chaos                          # CHAOS_TRIALS=50 trials of each fault
    CHAOS_TRIALS=5 make chaos
    python tests/chaos/chaos.py --trials 5 --json .cache/chaos/results.json

Faults (two lanes run at once: the worker faults, and the dependency faults one after another):

- ``kill``: SIGKILL to a worker's whole process group while its job trains (every other trial also the engine's own
  group at the same instant; otherwise the engine gets the SIGTERM its parent-death signal sends). The killed worker
  is replaced at once.
- ``redis``: the broker is killed and started again (odd trials: after a FLUSHALL, and a job is submitted while it
  is down, so accepted jobs have no message left).
- ``postgres``: the database is stopped (``-m immediate``: a crash) for a few seconds and started again; the API is
  probed all along.
- ``api``: uvicorn is SIGKILLed and started again while SSE clients follow every job.
- ``duplicate``: the ``jobs.run`` message of a running job and of a finished one is sent again (Celery
  ``send_task``).
- ``sigterm``: SIGTERM to a worker's main process (a graceful stop): its job must be handed back (``job`` event
  ``queued`` with ``reason: worker_shutdown``), sent again and resumed from a checkpoint on another worker. When the
  service does not do that yet (the worker just finishes its job first), the fault reports ``not implemented``.

What is counted, per fault (a problem is charged to the latest fault injected before it that touched its job):

- **lost**: an accepted job (the API answered 201) that vanished from the database, or is still not terminal a
  grace period (2 leases + a recovery period) after the deadline.
- **run twice**: two engine processes of one job alive at the same moment (the processes are scanned every 0.2 s:
  session leaders whose working folder is the job's), or two engines writing one events file at once (a ``seq``
  that repeats or goes back), or an attempt whose stored events were written after a newer attempt claimed the job,
  or a claim of a job after it finished.
- **stuck**: not terminal by the deadline (the faults are over and the job had time to finish).
- **events lost**: an engine event in ``<artifact_root>/<job>/events.jsonl`` missing from ``job_events``, stored
  twice, or stored out of ``seq`` order; or an SSE client that reconnected with ``Last-Event-ID`` and did not get
  every stored event exactly once, in order. Not counted: the last events an engine wrote within 1 s before its worker
  was SIGKILLed (or while it was dying after that), which the dead worker had not stored yet; they are reported as
  ``unstored_tail_events``.
- **other**: a job that ended ``failed``/``cancelled``; an HTTP 500 (or any answer but 503) while Postgres was
  down; a job whose lease was lost during a short database outage (workers must keep training); a resumed job whose
  first logged step is not after the checkpoint it resumed (training restarted from 0); a SIGTERM hand-back that
  broke its contract.
- **detection**: fault -> the system noticed. kill: the job is requeued (``job`` event ``queued``, or claimed anew);
  sigterm: the hand-back event; postgres: the API's first 503; api: the API is seen down; redis: the broker is back ->
  every worker answers a ping again; duplicate: sent -> a worker dropped it as not claimable.
- **recovery**: kill/sigterm: the fault -> the job claimed again (``resumed_s``: -> its first training step after
  resuming); postgres: the database is back -> the API answers 200 and every running job's buffered events are
  stored; api: the kill -> the new API answers and every SSE client is reading again; redis: the broker is back ->
  every queued job has a message again (or was claimed).

The suite exits non-zero when any lost / run twice / stuck / events lost / other count is not zero.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.chaos.cluster import (  # noqa: E402
    TERMINAL,
    ChaosSettings,
    Cluster,
    EngineMonitor,
    SseFollower,
    WorkerProc,
    now,
    running_cluster,
    ts,
)

FAULTS = ("kill", "redis", "postgres", "api", "duplicate", "sigterm")
LABELS = {
    "kill": "kill -9 worker",
    "redis": "redis restart/flush",
    "postgres": "postgres restart",
    "api": "api restart",
    "duplicate": "duplicate delivery",
    "sigterm": "sigterm worker",
}
COUNTS = ("lost", "twice", "stuck", "events", "series", "other")
POSTGRES_DOWN_S = 3.0
REDIS_DOWN_S = 2.0
KILL_TAIL_BEFORE_S = 1.0  # the worker stores events every 0.25 s: what an engine wrote just before the kill is gone
KILL_TAIL_AFTER_S = 15.0  # an engine that got SIGTERM from its dead parent may write a little before it exits


@dataclass
class Trial:
    fault: str
    index: int
    started: float
    job_id: str | None = None
    attempt: int | None = None  # the attempt a worker fault hit
    variant: str = ""
    detection_s: float | None = None
    recovery_s: float | None = None
    resumed_s: float | None = None
    outcome: str = "ok"  # ok | not_implemented | timeout | skipped
    notes: list[str] = field(default_factory=list)


@dataclass
class Problem:
    kind: str  # one of COUNTS
    job_id: str | None
    time: float
    detail: str
    fault: str | None = None


@dataclass
class JobRecord:
    job_id: str
    accepted_at: float
    follower: SseFollower
    note: str = ""


class Chaos:
    def __init__(self, cluster: Cluster, trials: int, *, parallel_worker_faults: int = 2, seed: int = 0) -> None:
        self.cluster = cluster
        self.n = trials
        self.parallel = parallel_worker_faults
        self.random = random.Random(seed)
        self.lock = threading.RLock()
        self.jobs: dict[str, JobRecord] = {}
        self.trials: list[Trial] = []
        self.problems: list[Problem] = []
        self.fault_log: list[tuple[float, str, str | None]] = []  # (time, fault, job id or None: every job)
        self.kills: dict[str, list[float]] = {}
        self.busy_jobs: set[str] = set()
        self.sigterm_supported: bool | None = None
        self.duplicates_sent: dict[str, int] = {}
        self.duplicates: list[tuple[Trial, list[str], float]] = []
        self.monitor = EngineMonitor(cluster.artifact_root)
        self.lanes_done = threading.Event()
        self.unstored_tail_events = 0
        self.lane_errors: list[str] = []

    # -- bookkeeping -----------------------------------------------------------------------------------------------

    def log(self, message: str) -> None:
        print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)

    def problem(self, kind: str, job_id: str | None, at: float, detail: str) -> None:
        with self.lock:
            self.problems.append(Problem(kind, job_id, at, detail))
        self.log(f"PROBLEM {kind}: job {job_id}: {detail}")

    def injected(self, fault: str, job_id: str | None, at: float) -> None:
        with self.lock:
            self.fault_log.append((at, fault, job_id))

    def add_trial(self, trial: Trial) -> None:
        with self.lock:
            self.trials.append(trial)
        numbers = f"detect {_fmt(trial.detection_s)} s, recover {_fmt(trial.recovery_s)} s"
        notes = f" ({'; '.join(trial.notes)})" if trial.notes else ""
        self.log(f"{trial.fault} #{trial.index} {trial.variant} {trial.outcome}: {numbers}{notes}")

    def accept(self, job_id: str, at: float, note: str = "") -> None:
        follower = SseFollower(self.cluster, job_id)
        with self.lock:
            self.jobs[job_id] = JobRecord(job_id, at, follower, note)
        follower.start()

    def submit(self, note: str = "") -> str:
        job_id, at = self.cluster.submit(self.cluster.sft_body())
        self.accept(job_id, at, note)
        return job_id

    # -- the run -----------------------------------------------------------------------------------------------------

    def run(self, drain_timeout: float) -> None:
        self.monitor.start()
        target = self.cluster.config.workers
        for _ in range(target):
            self.submit()
        lanes = [
            threading.Thread(target=self._lane, args=(self.worker_lane,), name="worker-lane", daemon=True),
            threading.Thread(target=self._lane, args=(self.dependency_lane,), name="dependency-lane", daemon=True),
        ]
        for lane in lanes:
            lane.start()
        while any(lane.is_alive() for lane in lanes):
            self.keep_pool(target)
            time.sleep(1.0)
        self.lanes_done.set()
        self.log("faults done: waiting for every job to finish")
        self.drain(drain_timeout)
        self.monitor.stop()

    def _lane(self, body: Any) -> None:
        try:
            body()
        except Exception as exc:  # a harness bug or a dead dependency: report it, don't hang the run
            import traceback

            traceback.print_exc()
            with self.lock:
                self.lane_errors.append(f"{type(exc).__name__}: {exc}")

    def keep_pool(self, target: int) -> None:
        """Keeps ``target`` jobs not finished, so that every worker has one to lose."""
        jobs = self.cluster.jobs()
        active = [j for j, row in jobs.items() if row["status"] not in TERMINAL]
        for _ in range(target - len(active)):
            self.submit()

    def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = self.cluster.jobs()
            if all(row["status"] in TERMINAL for row in jobs.values()) and len(jobs) >= len(self.jobs):
                break
            time.sleep(1.0)
        jobs = self.cluster.jobs()
        stuck = [j for j in self.jobs if j in jobs and jobs[j]["status"] not in TERMINAL]
        for job_id in stuck:
            self.problem("stuck", job_id, now(), f"still {jobs[job_id]['status']} at the deadline")
        if stuck:
            config = self.cluster.config
            grace = 2 * config.lease_seconds + config.recovery_seconds
            self.log(f"{len(stuck)} jobs not finished at the deadline: {grace:.0f} s more before they count as lost")
            time.sleep(grace)
            jobs = self.cluster.jobs()
            for job_id in stuck:
                if jobs[job_id]["status"] not in TERMINAL:
                    self.problem("lost", job_id, now(), f"never finished: {jobs[job_id]['status']}")
        for record in self.jobs.values():
            record.follower.stop(timeout=30 if record.follower.done else 5)

    # -- worker faults: kill -9 and SIGTERM ---------------------------------------------------------------------------

    def worker_lane(self) -> None:
        plan = [f for i in range(self.n) for f in ("kill", "sigterm")]
        trackers: list[threading.Thread] = []
        counters = {"kill": 0, "sigterm": 0}
        for fault in plan:
            counters[fault] += 1
            index = counters[fault]
            if fault == "sigterm" and self.sigterm_supported is False:
                self.add_trial(Trial("sigterm", index, now(), outcome="not_implemented"))
                continue
            while sum(t.is_alive() for t in trackers) >= self.parallel:
                time.sleep(0.3)
            victim = self.pick_victim(timeout=300)
            if victim is None:
                self.add_trial(Trial(fault, index, now(), outcome="skipped", notes=["no training job to inject into"]))
                self.problem("other", None, now(), f"{fault} #{index}: no training job to inject into within 300 s")
                continue
            job_id, attempt, worker = victim
            body = functools.partial(self.worker_fault, fault, index, job_id, attempt, worker)
            tracker = threading.Thread(target=self._lane, args=(body,))
            tracker.start()
            trackers.append(tracker)
            if fault == "sigterm" and self.sigterm_supported is None:
                tracker.join()  # whether the service hands jobs back at all decides the remaining SIGTERM trials
            time.sleep(1.0)
        for tracker in trackers:
            tracker.join()

    def pick_victim(self, timeout: float) -> tuple[str, int, WorkerProc] | None:
        """A job that trains on a live worker, has saved a checkpoint and is far from its end."""
        deadline = time.monotonic() + timeout
        config = self.cluster.config
        while time.monotonic() < deadline:
            jobs = list(self.cluster.jobs().items())
            self.random.shuffle(jobs)
            for job_id, row in jobs:
                if row["status"] != "running" or row["phase"] != "training":
                    continue
                worker = self.cluster.worker_named(row["worker"])
                with self.lock:
                    if job_id in self.busy_jobs or worker is None or worker.doomed or not worker.alive:
                        continue
                events = self.cluster.events(job_id, types=("job", "checkpoint", "progress"))
                claims = [i for i, e in enumerate(events) if _is_claim(e, row["attempt"])]
                if not claims:
                    continue
                # training in this attempt, and a checkpoint saved (in this attempt or an earlier one) to resume
                steps = [e["data"].get("step") or 0 for e in events[claims[-1] :] if e["type"] == "progress"]
                if not any(e["type"] == "checkpoint" for e in events) or not steps:
                    continue
                if max(steps) > config.max_steps - 3 * config.save_steps:
                    continue
                with self.lock:
                    if worker.doomed or job_id in self.busy_jobs:
                        continue
                    worker.doomed = True
                    self.busy_jobs.add(job_id)
                return job_id, row["attempt"], worker
            time.sleep(0.5)
        return None

    def worker_fault(self, fault: str, index: int, job_id: str, attempt: int, worker: WorkerProc) -> None:
        trial = Trial(fault, index, now(), job_id, attempt)
        try:
            if fault == "kill":
                self.kill_worker(trial, job_id, attempt, worker)
            else:
                self.sigterm_worker(trial, job_id, attempt, worker)
        finally:
            with self.lock:
                self.busy_jobs.discard(job_id)
        self.add_trial(trial)

    def kill_worker(self, trial: Trial, job_id: str, attempt: int, worker: WorkerProc) -> None:
        processes = [e for e in self.cluster.events(job_id, types=("process",)) if e["data"].get("attempt") == attempt]
        engine_group = processes[-1]["data"].get("pgid") if processes else None
        with_engine = trial.index % 2 == 1
        trial.variant = "group+engine" if with_engine else "group (engine gets SIGTERM)"
        at = now()
        os.killpg(worker.process.pid, signal.SIGKILL)
        if with_engine and engine_group:
            try:
                os.killpg(int(engine_group), signal.SIGKILL)
            except ProcessLookupError:
                pass
        trial.started = at
        with self.lock:
            self.kills.setdefault(job_id, []).append(at)
        self.injected("kill", job_id, at)
        worker.process.wait()
        threading.Thread(target=self._lane, args=(self.cluster.start_worker,), daemon=True).start()
        self.follow_retry(trial, job_id, attempt, at)

    def sigterm_worker(self, trial: Trial, job_id: str, attempt: int, worker: WorkerProc) -> None:
        at = now()
        worker.process.send_signal(signal.SIGTERM)  # the main process only, as a container runtime does
        trial.started = at
        self.injected("sigterm", job_id, at)
        # capacity stays the same whatever the stopping worker does
        threading.Thread(target=self._lane, args=(self.cluster.start_worker,), daemon=True).start()
        handed_back = self.wait_for(
            lambda: self.first_job_event(job_id, attempt, statuses=("queued",) + tuple(TERMINAL)), timeout=20
        )
        if handed_back is None or handed_back["data"].get("status") != "queued":
            # the worker goes on with its job (a warm shutdown): the service hands nothing back yet
            if self.sigterm_supported is None:
                self.sigterm_supported = False
            trial.outcome = "not_implemented"
            trial.notes.append("no hand-back within 20 s of SIGTERM: the worker finishes its job before stopping")
            return
        self.sigterm_supported = True
        reason = handed_back["data"].get("reason")
        if reason != "worker_shutdown":
            self.problem("other", job_id, at, f"SIGTERM: job queued with reason {reason!r}, not 'worker_shutdown'")
        self.follow_retry(trial, job_id, attempt, at)
        claims = [e for e in self.cluster.events(job_id, types=("job",)) if _is_claim(e, attempt + 1)]
        if claims and str(claims[0]["data"].get("worker", "")).startswith(f"{worker.name}:"):
            self.problem("other", job_id, at, f"SIGTERM: the stopping worker {worker.name} claimed its job again")
        try:
            worker.process.wait(timeout=60)
        except Exception:
            self.problem("other", job_id, at, "SIGTERM: the worker had not exited 60 s after handing its job back")
            os.killpg(worker.process.pid, signal.SIGKILL)

    def follow_retry(
        self, trial: Trial, job_id: str, attempt: int, at: float, timeout: float = 240, wait_resumed: bool = False
    ) -> None:
        """Detection (requeued or claimed anew), recovery (claimed again) and, with ``wait_resumed``, the first
        training step after (otherwise :meth:`check` reads it at the end)."""
        deadline = time.monotonic() + timeout
        detected = claimed = resumed = None
        while time.monotonic() < deadline:
            events = self.cluster.events(job_id, types=("job", "metrics"))
            claim_at = None
            for event in events:
                data = event["data"]
                if event["type"] == "job" and data.get("attempt") == attempt and data.get("status") == "queued":
                    detected = detected or event["created_at"]
                if _is_claim(event) and (data.get("attempt") or 0) > attempt:
                    claim_at = claim_at or event["created_at"]
                    detected = detected or claim_at
                if claim_at and event["type"] == "metrics" and data.get("loss") is not None and resumed is None:
                    resumed = ts(data.get("time"))
                if event["type"] == "job" and data.get("status") in TERMINAL and (data.get("attempt") or 0) > attempt:
                    resumed = resumed or event["created_at"]
            claimed = claim_at
            if claimed and (resumed or not wait_resumed):
                break
            time.sleep(0.5)
        trial.detection_s = _since(at, detected)
        trial.recovery_s = _since(at, claimed)
        trial.resumed_s = _since(at, resumed)
        if claimed is None:
            trial.outcome = "timeout"
            trial.notes.append(f"not claimed again within {timeout:.0f} s")

    def first_job_event(self, job_id: str, attempt: int, statuses: tuple[str, ...]) -> dict[str, Any] | None:
        for event in self.cluster.events(job_id, types=("job",)):
            data = event["data"]
            if data.get("attempt") == attempt and data.get("status") in statuses:
                return event
        return None

    @staticmethod
    def wait_for(probe: Any, timeout: float, interval: float = 0.3) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value or time.monotonic() > deadline:
                return value
            time.sleep(interval)

    # -- dependency faults: Postgres, Redis, the API, duplicates ------------------------------------------------------

    def dependency_lane(self) -> None:
        steps = {
            "postgres": self.postgres_fault,
            "redis": self.redis_fault,
            "api": self.api_fault,
            "duplicate": self.duplicate_fault,
        }
        self.wait_for(self.training_jobs, timeout=300, interval=1.0)
        for index in range(1, self.n + 1):
            for fault, step in steps.items():
                trial = Trial(fault, index, now())
                step(trial)
                self.add_trial(trial)
                time.sleep(0.5)

    def training_jobs(self) -> list[str]:
        return [
            j for j, row in self.cluster.jobs().items() if row["status"] == "running" and row["phase"] == "training"
        ]

    def last_event_ids(self) -> dict[str, int]:
        from sqlalchemy import text

        rows = self.cluster.db(
            lambda c: c.execute(text("SELECT job_id, max(id) AS last FROM job_events GROUP BY job_id")).all()
        )
        return {r.job_id: r.last for r in rows}

    def postgres_fault(self, trial: Trial) -> None:
        before = self.cluster.jobs()
        running = {j: row["attempt"] for j, row in before.items() if row["status"] == "running"}
        last_ids = self.last_event_ids()
        probe_job = next(iter(running), next(iter(before), "none"))
        codes: dict[int, int] = {}
        first_503: float | None = None
        with self.cluster.client(timeout=5) as client:
            at = now()
            self.cluster.postgres.stop(immediate=True)
            self.injected("postgres", None, at)
            trial.started = at
            posted = False
            while now() < at + POSTGRES_DOWN_S:
                try:
                    if not posted:
                        posted = True
                        answer = client.post("/v1/jobs/sft", json=self.cluster.sft_body())
                        if answer.status_code in (200, 201):  # impossible without a database; track it if so
                            self.accept(str(answer.json()["id"]), now(), "accepted while Postgres was down")
                    else:
                        answer = client.get(f"/v1/jobs/{probe_job}")
                except httpx.TransportError as exc:
                    self.problem("other", None, now(), f"API connection failed while Postgres was down: {exc!r}")
                    time.sleep(0.2)
                    continue
                codes[answer.status_code] = codes.get(answer.status_code, 0) + 1
                if answer.status_code == 503:
                    first_503 = first_503 or now()
                elif answer.status_code >= 500:
                    self.problem("other", None, now(), f"HTTP {answer.status_code} while Postgres was down")
                time.sleep(0.1)
            self.cluster.postgres.start()
            back = now()
            api_ok = None
            while api_ok is None and now() < back + 60:
                try:
                    answer = client.get(f"/v1/jobs/{probe_job}")
                except httpx.TransportError:
                    time.sleep(0.1)
                    continue
                if answer.status_code == 200 or answer.status_code == 404:
                    api_ok = now()
                elif answer.status_code != 503:
                    self.problem("other", None, now(), f"HTTP {answer.status_code} after Postgres came back")
                time.sleep(0.1)
        trial.detection_s = _since(at, first_503)
        if first_503 is None:
            trial.notes.append(f"no 503 while down: {codes}")
        # every job that was training goes on, with the same attempt, and its buffered events arrive
        delivered: list[float] = []
        deadline = time.monotonic() + 60
        for job_id, attempt in running.items():
            while time.monotonic() < deadline:
                new = self.cluster.events(job_id, after=last_ids.get(job_id, 0))
                later = [e["created_at"] for e in new if e["created_at"] and e["created_at"] >= back]
                if later:
                    delivered.append(min(later))
                    break
                if self.cluster.jobs().get(job_id, {}).get("status") in TERMINAL:
                    break
                time.sleep(0.3)
            row = self.cluster.jobs().get(job_id, {})
            with self.lock:  # a worker fault on the same job meanwhile (the other lane) changes its attempt rightly
                other_fault = any(
                    job == job_id and when >= at - self.cluster.config.lease_seconds for when, _, job in self.fault_log
                )
            if row.get("attempt") != attempt and row.get("status") not in TERMINAL and not other_fault:
                self.problem(
                    "other",
                    job_id,
                    at,
                    f"attempt {attempt} lost its lease during a {POSTGRES_DOWN_S:.0f} s database outage "
                    f"(now attempt {row.get('attempt')})",
                )
        trial.variant = f"down {POSTGRES_DOWN_S:.0f} s, {len(running)} running"
        if api_ok is not None:
            trial.recovery_s = max([api_ok, *delivered]) - back

    def redis_fault(self, trial: Trial) -> None:
        flush = trial.index % 2 == 0
        trial.variant = "flush+kill" if flush else "kill (appendonly)"
        submitted: list[str] = []
        at = now()
        if flush:
            self.cluster.redis.flush()
        self.cluster.redis.stop(kill=True)
        self.injected("redis", None, at)
        trial.started = at
        if flush:
            # a job accepted while the broker is down: stored, its message never sent
            started = time.monotonic()
            try:
                submitted.append(self.submit("accepted while Redis was down"))
                trial.notes.append(f"submitted while down in {time.monotonic() - started:.1f} s")
            except RuntimeError as exc:
                trial.notes.append(f"submission while down refused: {exc}")
        time.sleep(max(0.0, at + REDIS_DOWN_S - now()))
        self.cluster.redis.start()
        back = now()
        reconnected = self.cluster.wait_workers(self.cluster.live_workers(), timeout=120)
        trial.detection_s = _since(back, reconnected)
        if reconnected is None:
            trial.notes.append("a worker did not answer a ping within 120 s of Redis coming back")
        # every queued job has a message again, or was claimed
        config = self.cluster.config
        deadline = time.monotonic() + 3 * config.lease_seconds + 3 * config.recovery_seconds + 30
        recovered = None
        while time.monotonic() < deadline:
            queued = [j for j, row in self.cluster.jobs().items() if row["status"] == "queued"]
            try:
                messages = self.cluster.redis_messages()
            except Exception:
                time.sleep(0.3)
                continue
            if all(job_id in messages for job_id in queued):
                recovered = now()
                break
            time.sleep(0.3)
        trial.recovery_s = _since(back, recovered)
        if recovered is None:
            trial.outcome = "timeout"
            trial.notes.append("a queued job had no message in the broker long after it came back")

    def api_fault(self, trial: Trial) -> None:
        with self.lock:
            following = [r.follower for r in self.jobs.values() if not r.follower.done]
        at = now()
        self.cluster.kill_api()
        self.injected("api", None, at)
        trial.started = at
        down = None
        with httpx.Client(timeout=1) as client:
            while down is None and now() < at + 10:
                try:
                    client.get(f"{self.cluster.base_url}/healthz")
                    time.sleep(0.02)
                except httpx.TransportError:
                    down = now()
        trial.detection_s = _since(at, down)
        self.cluster.start_api(wait=False)
        started = now()
        answered = self.cluster.wait_api()
        # every SSE client of a job still running is reading again
        resumed = self.wait_for(
            lambda: all(f.done or (f.connects and f.connects[-1] >= started) for f in following), timeout=60
        )
        latest = max([answered, *[f.connects[-1] for f in following if f.connects and f.connects[-1] >= started]])
        trial.recovery_s = latest - at
        trial.variant = f"{len(following)} SSE clients"
        if not resumed:
            trial.notes.append("an SSE client did not reconnect within 60 s")

    def duplicate_fault(self, trial: Trial) -> None:
        jobs = self.cluster.jobs()
        running = [j for j, row in jobs.items() if row["status"] == "running"]
        finished = [j for j, row in jobs.items() if row["status"] in TERMINAL]
        targets = [self.random.choice(group) for group in (running, finished) if group]
        trial.variant = "+".join(name for name, group in (("running", running), ("finished", finished)) if group)
        at = now()
        trial.started = at
        for job_id in targets:
            self.cluster.celery().send_task("jobs.run", args=[job_id], queue=self.cluster.queue)
            self.injected("duplicate", job_id, at)
            with self.lock:
                self.duplicates_sent[job_id] = self.duplicates_sent.get(job_id, 0) + 1
        # a free worker takes the duplicate and drops it; every worker may be busy (prefetch 1): then it waits in the
        # queue, and the time it was dropped is read from the workers' logs at the end
        with self.lock:
            self.duplicates.append((trial, targets, at))

    # -- the checks ----------------------------------------------------------------------------------------------

    def check(self) -> None:
        jobs = self.cluster.jobs()
        for job_id, record in self.jobs.items():
            row = jobs.get(job_id)
            if row is None:
                self.problem("lost", job_id, now(), "vanished from the database")
                continue
            self.check_job(job_id, row, record)
        for overlap in self.monitor.overlaps:
            self.problem(
                "twice", overlap["job_id"], overlap["time"], f"two engines alive at once: pids {overlap['pids']}"
            )
        self.check_duplicates()
        for trial in self.trials:
            if trial.fault in ("kill", "sigterm") and trial.job_id and trial.attempt and trial.resumed_s is None:
                trial.resumed_s = _since(trial.started, self.resumed_at(trial.job_id, trial.attempt))

    def resumed_at(self, job_id: str, attempt: int) -> float | None:
        """When the attempt after ``attempt`` logged its first training step (or the job finished)."""
        claimed = False
        for event in self.cluster.events(job_id, types=("job", "metrics")):
            data = event["data"]
            if _is_claim(event) and (data.get("attempt") or 0) > attempt:
                claimed = True
            elif claimed and event["type"] == "metrics" and data.get("loss") is not None:
                return ts(data.get("time"))
            elif claimed and event["type"] == "job" and data.get("status") in TERMINAL:
                return event["created_at"]
        return None

    def check_job(self, job_id: str, row: dict[str, Any], record: JobRecord) -> None:
        events = self.cluster.events(job_id)
        if row["status"] in ("failed", "cancelled"):
            error = next(
                (e["data"].get("error") for e in reversed(events) if e["type"] == "job" and e["data"].get("error")),
                None,
            )
            self.problem("other", job_id, events[-1]["created_at"] if events else now(), f"{row['status']}: {error}")
        self.check_attempts(job_id, events)
        file_events = read_events_file(self.cluster.artifact_root / job_id / "events.jsonl")
        self.check_engine_events(job_id, events, file_events)
        self.check_resume(job_id, file_events)
        follower = record.follower
        stored = [e["id"] for e in events]
        if follower.received != stored:
            missing = sorted(set(stored) - set(follower.received))
            extra = len(follower.received) - len(set(follower.received))
            self.problem(
                "events",
                job_id,
                now(),
                f"SSE client got {len(follower.received)} events of {len(stored)} stored "
                f"({len(missing)} missing, e.g. {missing[:3]}; {extra} repeated; "
                f"in order: {follower.received == sorted(follower.received)}; drops {len(follower.drops)})",
            )
        for error in follower.errors:
            self.problem("other", job_id, now(), f"SSE answered {error}")
        if row["status"] == "succeeded":
            self.check_series(job_id)

    def check_series(self, job_id: str) -> None:
        """What a user reads: the loss series holds every logging step once, up to the last, each from the run that
        carried the job on (runs never go backwards along the steps); what an earlier run logged after a later run's
        checkpoint is superseded, not lost, and the job's lost work says so."""
        with self.cluster.client() as client:
            series = client.get(f"/v1/jobs/{job_id}/metrics", params={"include_superseded": "true"}).json()
            job = client.get(f"/v1/jobs/{job_id}").json()
        loss = series["train"].get("loss", [])
        steps = [p["step"] for p in loss]
        every = self.cluster.config.logging_steps
        expected = list(range(every, (steps[-1] if steps else 0) + 1, every))
        problems = []
        if steps != expected:
            repeated = len(steps) - len(set(steps))
            problems.append(
                f"loss at {len(steps)} steps, {repeated} repeated, {len(set(expected) - set(steps))} missing"
            )
        attempts = [p["attempt"] or 0 for p in loss]
        if attempts != sorted(attempts):
            problems.append("the series goes back to an earlier run")
        carried = {p["step"]: p["attempt"] or 0 for p in loss}
        lost = series["superseded"]["train"].get("loss", [])
        if any((p["attempt"] or 0) >= carried.get(p["step"], 0) for p in lost):
            problems.append("a superseded point is not older than the one that replaced it")
        if bool(lost) != bool(job["lost_work"]["steps"]):
            problems.append(f"{len(lost)} superseded points but lost_work {job['lost_work']}")
        if problems:
            runs: dict[int, list[int]] = {}
            for event in self.cluster.events(job_id, types=("metrics", "resumed", "job")):
                if event["type"] == "metrics" and event["data"].get("loss") is not None:
                    runs.setdefault(event.get("attempt") or 0, []).append(event["data"]["step"])
                elif event["type"] != "metrics":
                    problems.append(f"{event['type']}@{event.get('attempt')}:{_brief(event['data'])}")
            problems += [f"run {a} logged steps {min(s)}..{max(s)} ({len(s)})" for a, s in sorted(runs.items())]
            self.problem("series", job_id, now(), "; ".join(problems))

    def check_attempts(self, job_id: str, events: list[dict[str, Any]]) -> None:
        """Run twice: a claim after the job finished; events of an attempt written after a newer one claimed."""
        claims: dict[int, float] = {}
        finished_at = None
        for event in events:
            data = event["data"]
            if _is_claim(event):
                if finished_at is not None:
                    self.problem(
                        "twice", job_id, event["created_at"], f"claimed (attempt {data['attempt']}) after it finished"
                    )
                claims[int(data["attempt"])] = event["created_at"]
            elif event["type"] == "job" and data.get("status") in TERMINAL:
                finished_at = event["created_at"]
        attempt = 0
        for event in events:
            data = event["data"]
            if _is_claim(event):
                attempt = int(data["attempt"])
            elif _is_engine_event(data):
                written = ts(data.get("time"))
                newer = claims.get(attempt + 1)
                if written and newer and written > newer:
                    self.problem(
                        "twice",
                        job_id,
                        written,
                        f"attempt {attempt} wrote seq {data['seq']} after attempt {attempt + 1} claimed",
                    )

    def check_engine_events(self, job_id: str, events: list[dict[str, Any]], file_events: list[dict[str, Any]]) -> None:
        # the file: one writer at a time means seq 1, 2, 3, ... (a writer continues after the last complete line)
        seqs = [e.get("seq") for e in file_events]
        for previous, current in zip(seqs, seqs[1:], strict=False):
            if not isinstance(previous, int) or not isinstance(current, int) or current <= previous:
                self.problem("twice", job_id, now(), f"events file: seq {current} after {previous} (two writers)")
                break
        stored = [e["data"] for e in events if _is_engine_event(e["data"])]
        stored_seqs = [d["seq"] for d in stored]
        if len(set(stored_seqs)) != len(stored_seqs):
            self.problem(
                "events", job_id, now(), f"{len(stored_seqs) - len(set(stored_seqs))} engine events stored twice"
            )
        for previous, current in zip(stored_seqs, stored_seqs[1:], strict=False):
            if current <= previous:
                self.problem("events", job_id, now(), f"stored out of order: seq {current} after {previous}")
                break
        have = set(stored_seqs)
        kills = self.kills.get(job_id, [])
        # segments: one per engine run (each begins with run_started)
        segment: list[dict[str, Any]] = []
        segments: list[list[dict[str, Any]]] = []
        for event in file_events:
            if event.get("type") == "run_started" and segment:
                segments.append(segment)
                segment = []
            segment.append(event)
        if segment:
            segments.append(segment)
        for run in segments:
            missing = [e for e in run if e.get("seq") not in have]
            if not missing:
                continue
            first_missing = run.index(missing[0])
            is_tail = all(e.get("seq") not in have for e in run[first_missing:])
            start = ts(missing[0].get("time")) or 0.0
            near_kill = any(k - KILL_TAIL_BEFORE_S <= start <= k + KILL_TAIL_AFTER_S for k in kills)
            if is_tail and near_kill:
                self.unstored_tail_events += len(missing)
                continue
            self.problem(
                "events",
                job_id,
                start,
                f"{len(missing)} engine events in the file never stored (seq {missing[0].get('seq')}.."
                f"{missing[-1].get('seq')}, types {sorted({str(e.get('type')) for e in missing})}, tail: {is_tail})",
            )

    def check_resume(self, job_id: str, file_events: list[dict[str, Any]]) -> None:
        """A resumed run's first logged step comes after the checkpoint it resumed, not from step 1 again."""
        checkpoint = None
        waiting = False
        for event in file_events:
            kind = event.get("type")
            if kind == "run_started":
                waiting = checkpoint is not None
            elif kind == "checkpoint":
                checkpoint = event.get("step")
            elif kind == "metrics" and waiting and event.get("loss") is not None:
                waiting = False
                step = event.get("step") or 0
                if checkpoint is not None and step <= checkpoint:
                    self.problem(
                        "other",
                        job_id,
                        ts(event.get("time")) or now(),
                        f"resumed at step {step}, checkpoint {checkpoint}",
                    )

    def check_duplicates(self) -> None:
        """Every duplicate sent was consumed by the end (the broker holds no message of a finished job), and dropped
        as not claimable: the time that took (from the workers' logs) is the duplicate's detection time."""
        deadline = time.monotonic() + 60
        pending: list[str] = []
        while time.monotonic() < deadline:
            messages = self.cluster.redis_messages()
            pending = [j for j in self.duplicates_sent if j in messages]
            if not pending:
                break
            time.sleep(1.0)
        if pending:
            self.log(f"note: duplicates of {len(pending)} jobs still in the broker at the end (never consumed)")
        drops = self.cluster.drop_times()
        for trial, targets, sent in self.duplicates:
            times = [min((t for t in drops.get(j, []) if t >= sent - 1.0), default=None) for j in targets]
            found = [t for t in times if t is not None]
            if found:
                trial.detection_s = round(max(found) - sent, 2)
            if len(found) < len(targets):
                # taken while the job was queued again (a fault requeued it): that message ran the retry, legitimately
                trial.notes.append(f"{len(targets) - len(found)} of {len(targets)} not dropped (ran a queued retry)")

    # -- the report ----------------------------------------------------------------------------------------------

    def attribute(self) -> None:
        for problem in self.problems:
            candidates = [
                (at, fault)
                for at, fault, job in self.fault_log
                if at <= problem.time + 1.0 and (job is None or job == problem.job_id)
            ]
            if problem.kind in ("stuck", "lost") or not candidates:
                touching = [(at, f) for at, f, job in self.fault_log if job is None or job == problem.job_id]
                candidates = candidates if problem.kind not in ("stuck", "lost") else touching
            problem.fault = max(candidates)[1] if candidates else None

    def table(self) -> list[dict[str, Any]]:
        self.attribute()
        rows = []
        for fault in FAULTS:
            trials = [t for t in self.trials if t.fault == fault]
            row: dict[str, Any] = {"fault": fault, "label": LABELS[fault], "trials": len(trials)}
            for kind in COUNTS:
                row[kind] = sum(1 for p in self.problems if p.kind == kind and p.fault == fault)
            row["worst_detection_s"] = _max([t.detection_s for t in trials])
            row["worst_recovery_s"] = _max([t.recovery_s for t in trials])
            row["worst_resumed_s"] = _max([t.resumed_s for t in trials])
            row["not_implemented"] = sum(1 for t in trials if t.outcome == "not_implemented")
            row["timeouts"] = sum(1 for t in trials if t.outcome in ("timeout", "skipped"))
            rows.append(row)
        unattributed = [p for p in self.problems if p.fault is None]
        if unattributed:
            row = {"fault": "-", "label": "(no fault before it)", "trials": 0}
            for kind in COUNTS:
                row[kind] = sum(1 for p in unattributed if p.kind == kind)
            rows.append(row)
        return rows

    def failed(self, rows: list[dict[str, Any]]) -> bool:
        return bool(self.lane_errors) or any(row.get(kind) for row in rows for kind in COUNTS)


def format_table(rows: list[dict[str, Any]]) -> str:
    header = ["fault", "trials", "jobs lost", "run twice", "stuck", "events lost", "series wrong", "other",
              "worst detection s", "worst recovery s"]  # fmt: skip
    lines = [header]
    for row in rows:
        trials = str(row["trials"])
        if row.get("not_implemented"):
            implemented = row["trials"] - row["not_implemented"]
            trials = "not implemented" if not implemented else f"{trials} ({row['not_implemented']} not implemented)"
        lines.append(
            [
                row["label"],
                trials,
                *[str(row[k]) for k in COUNTS],
                _fmt(row.get("worst_detection_s")),
                _fmt(row.get("worst_recovery_s")),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append("| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def _brief(data: dict[str, Any]) -> str:
    keys = ("status", "reason", "from_step", "checkpoint")
    return ",".join(f"{k}={str(data[k]).rsplit('/', 1)[-1]}" for k in keys if data.get(k) is not None)


def read_events_file(path: Path) -> list[dict[str, Any]]:
    """The complete lines of an events file (a torn last line is skipped, as the worker does)."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return []
    events = []
    for raw in content[: content.rfind(b"\n") + 1].splitlines():
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def _is_claim(event: dict[str, Any], attempt: int | None = None) -> bool:
    data = event["data"]
    if event["type"] != "job" or data.get("status") != "running" or "worker" not in data:
        return False
    return attempt is None or data.get("attempt") == attempt


def _is_engine_event(data: dict[str, Any]) -> bool:
    return isinstance(data, dict) and "v" in data and isinstance(data.get("seq"), int)


def _since(start: float, end: float | None) -> float | None:
    return None if end is None else round(end - start, 2)


def _max(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(max(present), 2) if present else None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def run_chaos(
    trials: int,
    config: ChaosSettings | None = None,
    *,
    json_path: Path | None = None,
    log_dir: Path | None = None,
    drain_timeout: float = 600,
) -> tuple[list[dict[str, Any]], bool, dict[str, Any]]:
    """Runs the suite; returns the table's rows, whether it failed, and the whole result (also written to
    ``json_path``)."""
    config = config or ChaosSettings()
    root = Path(tempfile.mkdtemp(prefix="chaos-"))
    root.chmod(0o755)  # Postgres runs as 'postgres' when we are root: it must reach its folder in here
    log_dir = log_dir or REPO_ROOT / ".cache" / "chaos" / time.strftime("run-%Y%m%d-%H%M%S")
    started = time.monotonic()
    with running_cluster(root, config, log_dir) as cluster:
        chaos = Chaos(cluster, trials)
        try:
            chaos.run(drain_timeout)
            chaos.check()
        finally:
            cluster.kill_engines()
    rows = chaos.table()
    wall = time.monotonic() - started
    result = {
        "trials_per_fault": trials,
        "wall_s": round(wall, 1),
        "settings": asdict(config),
        "jobs": len(chaos.jobs),
        "rows": rows,
        "problems": [asdict(p) for p in chaos.problems],
        "unstored_tail_events": chaos.unstored_tail_events,
        "sigterm_hand_back": chaos.sigterm_supported,
        "lane_errors": chaos.lane_errors,
        "trials": [asdict(t) for t in chaos.trials],
        "logs": str(log_dir),
    }
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2, default=str))
    failed = chaos.failed(rows)
    if not failed:
        shutil.rmtree(root, ignore_errors=True)
    return rows, failed, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=int(os.environ.get("CHAOS_TRIALS", "50")))
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--json", type=Path, default=REPO_ROOT / ".cache" / "chaos" / "results.json")
    args = parser.parse_args(argv)
    rows, failed, result = run_chaos(args.trials, ChaosSettings(workers=args.workers), json_path=args.json)
    print()
    print(format_table(rows))
    print(
        f"\n{result['jobs']} jobs, {args.trials} trials per fault, {result['wall_s']:.0f} s; "
        f"{result['unstored_tail_events']} events unstored at SIGKILL (not counted); results: {args.json}; "
        f"logs: {result['logs']}"
    )
    for problem in result["problems"]:
        print(f"  {problem['kind']} [{problem['fault']}] job {problem['job_id']}: {problem['detail']}")
    for error in result["lane_errors"]:
        print(f"  harness error: {error}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
