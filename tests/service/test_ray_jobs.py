"""Multi-node jobs on a real Ray cluster on this machine: a head started by a fixture (``ray start --head``, CPU, gloo),
the API, a real Celery worker with ``FINETUNING_RAY_ADDRESS``, the tiny model training for real as 2 Ray workers
(2 ``torch.distributed`` ranks) under Ray Train.

- the job succeeds, its events stream in while it runs, and its loss curve is the one a 1-process run and a 2-process
  ``accelerate`` run of the same config give (the total batch size is the same whatever the world size);
- a cancel stops the Ray job within seconds;
- ``kill -9`` of one Ray worker process mid-run: Ray Train restarts the group, which resumes from the newest complete
  checkpoint, and the job succeeds;
- ``kill -9`` of the Celery worker: the Ray job trains on, and the worker that takes the job over attaches to it (one
  Ray job for the job, not two)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from api.main import create_app
from finetuning.events import read_events
from finetuning.tiny import tiny_chat_records, write_jsonl
from jobcore.settings import ServiceSettings
from tests.ray_cluster import RayCluster
from tests.service.api_helpers import Caller
from tests.service.conftest import start_worker
from tests.workers import stop_worker
from worker.dispatch import enqueue_job
from worker.recovery import recover

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
JOB_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    cluster = RayCluster(tmp_path_factory.mktemp("ray-logs"), num_cpus=4)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def ray_settings(settings: ServiceSettings, ray_cluster: RayCluster) -> ServiceSettings:
    return settings.model_copy(
        update={
            "ray_address": ray_cluster.address,
            "ray_max_failures": 2,
            # jobs on the cluster that name no queue go here: this module's worker consumes it
            "ray_queue": f"ray-{secrets.token_hex(3)}",
            "token_cache_seconds": 0,
        }
    )


def ray_env(settings: ServiceSettings) -> dict[str, str]:
    return {
        "FINETUNING_RAY_ADDRESS": str(settings.ray_address),
        "FINETUNING_RAY_MAX_FAILURES": str(settings.ray_max_failures),
    }


@pytest.fixture(scope="module")
def ray_worker(ray_settings: ServiceSettings, service_root: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = start_worker(
        ray_settings.model_copy(update={"default_queue": ray_settings.ray_queue}),
        service_root / "ray-worker.log",
        hostname=f"ray-{secrets.token_hex(3)}@localhost",
        env=ray_env(ray_settings),
    )
    yield process
    stop_worker(process)


@pytest.fixture(scope="module")
def client(ray_settings: ServiceSettings) -> Iterator[TestClient]:
    with TestClient(create_app(ray_settings)) as client:
        yield client


def training(model: Path, data: Path, *, max_steps: int, save_steps: int | None = None) -> dict[str, Any]:
    """The config under test: the same for the service and for the local runs it is compared with."""
    return {
        "data_conf": {
            "chat_template_name": "chat-ml",
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(data)}]},
            "validation_data": {"type": "NONE"},
        },
        "training_args": {
            "max_steps": max_steps,
            "learning_rate": 5e-3,
            "logging_steps": 1,
            "save_strategy": "steps" if save_steps else "no",
            **({"save_steps": save_steps} if save_steps else {}),
            "use_cpu": True,
            "report_to": [],
            "seed": 7,
            "ddp_find_unused_parameters": False,
        },
        "batchsize_conf": {"total_train_batch_size": 8, "max_per_device_train_batch_size": 8},
        "peft_conf": {"peft_type": "LORA", "peft_kwargs": {"r": 8, "lora_alpha": 16, "target_modules": "all-linear"}},
        "run_conf": {"model": str(model)},
        "sft_args": {"max_seq_length": 128},
    }


def wait_status(caller: Caller, job_id: str, statuses: set[str], timeout: float = JOB_TIMEOUT_S) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = caller.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return dict(job)
        assert time.monotonic() < deadline, f"job {job_id} not {statuses} after {timeout} s: {job['status']}"
        time.sleep(0.5)


def all_events(caller: Caller, job_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = caller.get(f"/v1/jobs/{job_id}/events?after={after}&limit=1000").json()
        events += page["data"]
        if page["next"] is None:
            return events
        after = page["next"]


def step_losses(events: list[dict[str, Any]]) -> dict[int, float]:
    return {
        e["data"]["step"]: float(e["data"]["loss"])
        for e in events
        if e["type"] == "metrics" and e["data"].get("loss") is not None
    }


def logged_steps(caller: Caller, job_id: str) -> int:
    return max(step_losses(all_events(caller, job_id)), default=0)


def wait_step(caller: Caller, job_id: str, step: int, timeout: float = JOB_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while logged_steps(caller, job_id) < step:
        job = caller.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] in ("queued", "running"), (job["status"], job["error"])
        assert time.monotonic() < deadline, f"job {job_id} did not log step {step} within {timeout} s"
        time.sleep(0.5)


def local_losses(tmp_path: Path, config: dict[str, Any], processes: int) -> dict[int, float]:
    """The same config run by hand: one process, or ``accelerate launch`` with ``processes`` (gloo on the CPU)."""
    run = tmp_path / f"local-{processes}"
    run.mkdir()
    config = {**config, "training_args": {**config["training_args"], "output_dir": str(run / "out")}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    launcher = [sys.executable, "-m", "finetuning.cli"]
    if processes > 1:
        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
        launcher += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "finetuning.cli"]
    argv = [*launcher, "--num-preprocess-workers", "1", "--events-file", str(run / "events.jsonl")]
    done = subprocess.run(
        [*argv, "sft", str(run / "config.yaml")],
        cwd=REPO_ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    events = read_events(run / "events.jsonl")
    return {e["step"]: float(e["loss"]) for e in events if e["type"] == "metrics" and e.get("loss") is not None}


def ray_job_status(settings: ServiceSettings, submission_id: str) -> str:
    from ray.job_submission import JobSubmissionClient

    return str(JobSubmissionClient(str(settings.ray_address)).get_job_status(submission_id))


def ray_submissions(settings: ServiceSettings, job_id: str) -> list[str]:
    from ray.job_submission import JobSubmissionClient

    jobs = JobSubmissionClient(str(settings.ray_address)).list_jobs()
    return [str(j.submission_id) for j in jobs if str(j.submission_id or "").startswith(f"finetuning-{job_id}-")]


def process_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == "process"]


def test_a_two_worker_job_trains_streams_and_matches_local_runs(
    client: TestClient,
    ray_settings: ServiceSettings,
    ray_worker: subprocess.Popen[bytes],
    tiny_model_dir: Path,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    data = write_jsonl(tiny_chat_records(32), data_dir / "ray-colours.jsonl")
    config = training(tiny_model_dir, data, max_steps=6)
    caller = Caller(client, ray_settings)
    submitted = caller.post("/v1/jobs/sft?nodes=2&processes=1", config)
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["id"]
    resolved = submitted.json()["resolved"]
    assert resolved["executor"] == "ray"
    assert submitted.json()["queue"] == ray_settings.ray_queue  # a worker that needs no GPU follows it
    assert (resolved["nodes"], resolved["world_size"], resolved["per_device_train_batch_size"]) == (2, 2, 4)

    # events arrive while it runs, not only at the end
    seen_running: set[int] = set()
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        job = caller.get(f"/v1/jobs/{job_id}").json()
        if job["status"] == "running":
            seen_running |= set(step_losses(all_events(caller, job_id)))
        if job["status"] not in ("queued", "running"):
            break
        assert time.monotonic() < deadline, "the Ray job did not finish"
        time.sleep(0.3)
    assert job["status"] == "succeeded", job
    assert seen_running, "no metrics event was stored while the job ran"

    events = all_events(caller, job_id)
    started = next(e for e in events if e["type"] == "run_started")
    assert started["data"]["config"]["resolved"]["num_processes"] == 2  # two torch.distributed ranks
    assert started["data"]["config"]["resolved"]["per_device_train_batch_size"] == 4
    [process] = process_events(events)
    assert ray_job_status(ray_settings, process["ray_submission_id"]) == "SUCCEEDED"
    seqs = [e["data"]["seq"] for e in events if isinstance(e["data"].get("seq"), int)]
    assert seqs == sorted(seqs)
    assert len(seqs) == len(set(seqs))

    on_ray = step_losses(events)
    assert sorted(on_ray) == list(range(1, 7))
    one_process = local_losses(tmp_path, config, 1)
    accelerate = local_losses(tmp_path, config, 2)
    for step, loss in on_ray.items():
        assert loss == pytest.approx(accelerate[step], rel=1e-3), (step, on_ray, accelerate)
        assert loss == pytest.approx(one_process[step], rel=2e-2), (step, on_ray, one_process)


def test_a_cancel_stops_the_ray_job_within_seconds(
    client: TestClient,
    ray_settings: ServiceSettings,
    ray_worker: subprocess.Popen[bytes],
    tiny_model_dir: Path,
    data_dir: Path,
) -> None:
    data = write_jsonl(tiny_chat_records(32), data_dir / "ray-cancel.jsonl")
    caller = Caller(client, ray_settings)
    submitted = caller.post("/v1/jobs/sft?nodes=2", training(tiny_model_dir, data, max_steps=5000))
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["id"]
    wait_step(caller, job_id, 2)
    asked = time.monotonic()
    assert caller.post(f"/v1/jobs/{job_id}/cancel").status_code in (200, 202)
    job = wait_status(caller, job_id, {"cancelled", "failed", "succeeded"}, timeout=60)
    took = time.monotonic() - asked
    assert job["status"] == "cancelled", job
    assert took < 30, f"the cancel took {took:.0f} s"
    [process] = process_events(all_events(caller, job_id))
    assert ray_job_status(ray_settings, process["ray_submission_id"]) == "STOPPED"
    assert logged_steps(caller, job_id) < 5000


def ray_train_worker_pids() -> list[int]:
    listed = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [int(line.split()[0]) for line in listed.splitlines() if "ray::RayTrainWorker" in line]


def test_a_lost_ray_worker_restarts_the_group_from_its_checkpoint(
    client: TestClient,
    ray_settings: ServiceSettings,
    ray_worker: subprocess.Popen[bytes],
    tiny_model_dir: Path,
    data_dir: Path,
) -> None:
    data = write_jsonl(tiny_chat_records(32), data_dir / "ray-restart.jsonl")
    caller = Caller(client, ray_settings)
    submitted = caller.post("/v1/jobs/sft?nodes=2", training(tiny_model_dir, data, max_steps=40, save_steps=10))
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["id"]
    wait_step(caller, job_id, 13)  # past checkpoint-10
    pids = ray_train_worker_pids()
    assert len(pids) == 2, pids
    os.kill(pids[-1], signal.SIGKILL)

    job = wait_status(caller, job_id, {"succeeded", "failed", "cancelled"})
    assert job["status"] == "succeeded", job
    events = all_events(caller, job_id)
    lines = [e["data"].get("line", "") for e in events if e["type"] == "log"]
    assert any("Ray Train restarted the training group" in line for line in lines)
    starts = [e for e in events if e["type"] == "run_started"]
    assert len(starts) == 2
    resumed_from = starts[-1]["data"]["config"]["resolved"]["resume_from_checkpoint"]
    assert isinstance(resumed_from, str), resumed_from
    assert "checkpoint-" in resumed_from, resumed_from
    assert int(resumed_from.rsplit("checkpoint-", 1)[1]) >= 10
    assert max(step_losses(events)) == 40
    assert len(process_events(events)) == 1  # one Ray job: the restart was Ray Train's own
    [attempt] = job["attempts"]
    assert attempt["ray_restarts"] == 1  # counted in the job's attempt history


def test_the_worker_taking_over_attaches_to_the_running_ray_job(
    client: TestClient,
    ray_settings: ServiceSettings,
    service_root: Path,
    tiny_model_dir: Path,
    data_dir: Path,
) -> None:
    queue = f"ray-lost-{secrets.token_hex(3)}"
    fast = ray_settings.model_copy(
        update={"default_queue": queue, "lease_seconds": 5, "heartbeat_seconds": 1.0, "requeue_backoff_seconds": 0}
    )
    data = write_jsonl(tiny_chat_records(32), data_dir / "ray-attach.jsonl")
    caller = Caller(client, ray_settings)
    first = start_worker(
        fast, service_root / "ray-lost-1.log", hostname=f"rl1-{secrets.token_hex(3)}@localhost", env=ray_env(fast)
    )
    try:
        submitted = caller.post(f"/v1/jobs/sft?nodes=2&queue={queue}", training(tiny_model_dir, data, max_steps=150))
        assert submitted.status_code == 201, submitted.text
        job_id = submitted.json()["id"]
        wait_step(caller, job_id, 3)
        os.killpg(first.pid, signal.SIGKILL)  # the whole Celery worker; the Ray job is the cluster's
        first.wait()
    finally:
        stop_worker(first)
    [submission] = ray_submissions(fast, job_id)
    assert ray_job_status(fast, submission) == "RUNNING"
    time.sleep(fast.lease_seconds + 1)

    def send_own(settings: ServiceSettings, sent_id: str, sent_queue: str, **kwargs: Any) -> None:
        if sent_id == job_id:
            enqueue_job(settings, sent_id, sent_queue, **kwargs)

    assert job_id in recover(fast, dispatch=send_own).requeued
    second = start_worker(
        fast, service_root / "ray-lost-2.log", hostname=f"rl2-{secrets.token_hex(3)}@localhost", env=ray_env(fast)
    )
    try:
        job = wait_status(caller, job_id, {"succeeded", "failed", "cancelled"})
    finally:
        stop_worker(second)
    assert job["status"] == "succeeded", job
    assert ray_submissions(fast, job_id) == [submission]  # attached, not started again
    events = all_events(caller, job_id)
    processes = process_events(events)
    assert [p["ray_submission_id"] for p in processes] == [submission, submission]
    assert processes[-1].get("attached") is True
    steps = [e["data"]["step"] for e in events if e["type"] == "metrics" and e["data"].get("loss") is not None]
    assert steps == list(range(1, 151))  # each step once: what the first worker stored is not stored again
    seqs = [e["data"]["seq"] for e in events if isinstance(e["data"].get("seq"), int)]
    assert len(seqs) == len(set(seqs))


def test_a_cancel_with_checkpoint_saves_one_on_every_rank_and_the_job_resumes_from_it(
    client: TestClient,
    ray_settings: ServiceSettings,
    ray_worker: subprocess.Popen[bytes],
    tiny_model_dir: Path,
    data_dir: Path,
) -> None:
    data = write_jsonl(tiny_chat_records(32), data_dir / "ray-stop.jsonl")
    caller = Caller(client, ray_settings)
    submitted = caller.post("/v1/jobs/sft?nodes=2", training(tiny_model_dir, data, max_steps=5000))
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["id"]
    wait_step(caller, job_id, 3)
    assert caller.post(f"/v1/jobs/{job_id}/cancel?checkpoint=true").status_code in (200, 202)
    job = wait_status(caller, job_id, {"cancelled", "failed", "succeeded"}, timeout=120)
    assert job["status"] == "cancelled", job
    checkpoint = job["artifacts"]["checkpoint"]
    assert "checkpoint-" in checkpoint, job["artifacts"]
    assert Path(checkpoint).is_dir(), job["artifacts"]
    stopped_at = int(checkpoint.rsplit("checkpoint-", 1)[1])
    assert 3 <= stopped_at < 5000
    [process] = process_events(all_events(caller, job_id))
    # the engine stopped on its own terms (exit 75 through the driver), not killed
    assert ray_job_status(ray_settings, process["ray_submission_id"]) == "FAILED"
    stop_file = ray_settings.job_outputs(job_id) / ".stop-requested"

    # resumed: a new Ray job, which does not see the old stop request, continues from the checkpoint
    assert caller.post(f"/v1/jobs/{job_id}/resume").status_code in (200, 202)
    wait_step(caller, job_id, stopped_at + 2)
    assert not Path(str(stop_file)).exists()
    events = all_events(caller, job_id)
    assert len({p["ray_submission_id"] for p in process_events(events)}) == 2
    starts = [e for e in events if e["type"] == "run_started"]
    assert len(starts) == 2
    assert str(starts[-1]["data"]["config"]["resolved"]["resume_from_checkpoint"]).endswith(f"checkpoint-{stopped_at}")
    assert caller.post(f"/v1/jobs/{job_id}/cancel").status_code in (200, 202)
    assert wait_status(caller, job_id, {"cancelled", "failed", "succeeded"}, timeout=60)["status"] == "cancelled"


def test_a_cluster_that_goes_away_mid_run_fails_the_job_with_a_clear_error(
    settings: ServiceSettings, service_root: Path, tiny_model_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    cluster = RayCluster(tmp_path / "ray-logs", num_cpus=4)
    cluster.start()
    queue = f"ray-gone-{secrets.token_hex(3)}"
    gone = settings.model_copy(
        update={"ray_address": cluster.address, "default_queue": queue, "ray_unreachable_seconds": 15.0}
    )
    worker: subprocess.Popen[bytes] | None = None
    try:
        worker = start_worker(
            gone,
            service_root / "ray-gone.log",
            hostname=f"rg-{secrets.token_hex(3)}@localhost",
            env={**ray_env(gone), "FINETUNING_RAY_UNREACHABLE_SECONDS": "15"},
        )
        with TestClient(create_app(gone.model_copy(update={"token_cache_seconds": 0}))) as client:
            caller = Caller(client, gone)
            data = write_jsonl(tiny_chat_records(32), data_dir / "ray-gone.jsonl")
            submitted = caller.post("/v1/jobs/sft?nodes=2", training(tiny_model_dir, data, max_steps=5000))
            assert submitted.status_code == 201, submitted.text
            job_id = submitted.json()["id"]
            wait_step(caller, job_id, 2)
            cluster.stop()
            job = wait_status(caller, job_id, {"cancelled", "failed", "succeeded"}, timeout=90)
            assert job["status"] == "failed", job
            assert job["error"]["code"] == "ray_unavailable"
            assert cluster.address in job["error"]["message"]
            # and new multi-node jobs are refused at once while it is away
            refused = caller.post("/v1/jobs/sft?nodes=2", training(tiny_model_dir, data, max_steps=2))
            assert refused.status_code == 503, refused.text
    finally:
        if worker is not None:
            stop_worker(worker)
        cluster.stop()


def test_a_stopping_worker_leaves_the_ray_job_running_and_a_cancel_while_queued_stops_it(
    client: TestClient, ray_settings: ServiceSettings, service_root: Path, tiny_model_dir: Path, data_dir: Path
) -> None:
    queue = f"ray-back-{secrets.token_hex(3)}"
    own = ray_settings.model_copy(update={"default_queue": queue})
    data = write_jsonl(tiny_chat_records(32), data_dir / "ray-back.jsonl")
    caller = Caller(client, ray_settings)
    worker = start_worker(
        own, service_root / "ray-back.log", hostname=f"rb-{secrets.token_hex(3)}@localhost", env=ray_env(own)
    )
    try:
        submitted = caller.post(f"/v1/jobs/sft?nodes=2&queue={queue}", training(tiny_model_dir, data, max_steps=5000))
        assert submitted.status_code == 201, submitted.text
        job_id = submitted.json()["id"]
        wait_step(caller, job_id, 2)
        os.kill(worker.pid, signal.SIGTERM)  # a warm shutdown, as Kubernetes asks: the job is handed back at once
        worker.wait(timeout=60)
    finally:
        stop_worker(worker)
    job = caller.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "queued", job
    [submission] = ray_submissions(own, job_id)
    assert ray_job_status(own, submission) == "RUNNING"  # it does not need the worker

    assert caller.post(f"/v1/jobs/{job_id}/cancel").status_code in (200, 202)
    assert caller.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
    deadline = time.monotonic() + 30
    while ray_job_status(own, submission) != "STOPPED":
        assert time.monotonic() < deadline, "the cancelled job's Ray job still runs"
        time.sleep(0.5)


def test_a_lost_node_restarts_the_group_on_its_replacement(
    settings: ServiceSettings, service_root: Path, tiny_model_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    """A head with room for one rank and a second raylet with room for the other: the ranks are spread over two
    nodes. The second node is killed (its raylet and every process on it) mid-run and a new one joins, as KubeRay
    replaces a lost pod: the group restarts there from the newest checkpoint."""
    cluster = RayCluster(tmp_path / "ray-logs", num_cpus=1)
    cluster.start()
    queue = f"ray-node-{secrets.token_hex(3)}"
    nodes = settings.model_copy(update={"ray_address": cluster.address, "default_queue": queue})
    worker: subprocess.Popen[bytes] | None = None
    try:
        node = cluster.add_node(num_cpus=1)
        worker = start_worker(
            nodes, service_root / "ray-node.log", hostname=f"rn-{secrets.token_hex(3)}@localhost", env=ray_env(nodes)
        )
        with TestClient(create_app(nodes.model_copy(update={"token_cache_seconds": 0}))) as client:
            caller = Caller(client, nodes)
            data = write_jsonl(tiny_chat_records(32), data_dir / "ray-node.jsonl")
            config = training(tiny_model_dir, data, max_steps=30, save_steps=10)
            submitted = caller.post("/v1/jobs/sft?nodes=2", config)
            assert submitted.status_code == 201, submitted.text
            job_id = submitted.json()["id"]
            wait_step(caller, job_id, 13)  # past checkpoint-10
            cluster.kill_node(node)  # its raylet, its Ray worker, that rank's engine
            cluster.add_node(num_cpus=1)
            job = wait_status(caller, job_id, {"succeeded", "failed", "cancelled"})
            assert job["status"] == "succeeded", (job["status"], job["error"])
            [attempt] = job["attempts"]
            assert attempt["ray_restarts"] == 1
            starts = [e for e in all_events(caller, job_id) if e["type"] == "run_started"]
            assert len(starts) == 2
            resumed_from = str(starts[-1]["data"]["config"]["resolved"]["resume_from_checkpoint"])
            assert int(resumed_from.rsplit("checkpoint-", 1)[1]) >= 10
    finally:
        if worker is not None:
            stop_worker(worker)
        cluster.stop()
