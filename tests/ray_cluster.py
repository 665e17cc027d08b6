"""A real Ray cluster on this machine for the tests: a head (GCS, raylet, dashboard with its job server) started with
``ray start --head --block`` from this venv, CPU only, and optionally a second raylet joining it as another node.

Each runs in a process group of its own and is stopped by signalling that group, never with ``ray stop`` (which stops
every Ray process on the machine). The processes the cluster starts use this venv's Python (it is first on their
PATH), so a Ray job's ``python -m finetuning.ray_train`` imports the code under test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
START_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def node_ports() -> list[str]:
    """Free ports for a node's agents: their defaults (52365 for the dashboard agent among them) are taken by any
    other Ray node on this machine, and a head without its agent takes no jobs ("No available agent")."""
    return [
        "--dashboard-agent-listen-port",
        str(free_port()),
        "--dashboard-agent-grpc-port",
        str(free_port()),
        "--metrics-export-port",
        str(free_port()),
        "--runtime-env-agent-port",
        str(free_port()),
    ]


class RayCluster:
    def __init__(self, log_dir: Path, *, num_cpus: int = 4, env: dict[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.num_cpus = num_cpus
        self.gcs_port = free_port()
        self.dashboard_port = free_port()
        # Ray's unix sockets live under its temp dir: a short path (a socket path has at most 107 bytes)
        self.temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
        self.env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            "RAY_USAGE_STATS_ENABLED": "0",
            **(env or {}),
        }
        self.nodes: list[subprocess.Popen[bytes]] = []

    @property
    def address(self) -> str:
        """The job-submission address (what FINETUNING_RAY_ADDRESS names)."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start(self) -> None:
        head = [
            str(BIN / "ray"),
            "start",
            "--head",
            "--block",
            "--port",
            str(self.gcs_port),
            "--node-ip-address",
            "127.0.0.1",
            "--num-cpus",
            str(self.num_cpus),
            "--num-gpus",
            "0",
            "--object-store-memory",
            str(150 * 1024 * 1024),
            "--include-dashboard",
            "true",
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(self.dashboard_port),
            "--temp-dir",
            self.temp_dir,
            "--disable-usage-stats",
            *node_ports(),
        ]
        self.nodes.append(self._spawn(head, "ray-head.log"))
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.answers():
            if self.nodes[0].poll() is not None:
                raise RuntimeError(f"the Ray head exited: see {self.log_dir / 'ray-head.log'}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Ray head did not answer within {START_TIMEOUT_S} s")
            time.sleep(0.5)
        try:
            self.wait_for_job_agent(deadline)
        except BaseException:
            self.stop()  # a head that takes no jobs is no use, and must not outlive the test
            raise

    def wait_for_job_agent(self, deadline: float) -> None:
        """A new head answers before its job agent is up ("No available agent to submit job"): a trivial job that
        runs to its end says the cluster takes jobs."""
        from ray.job_submission import JobSubmissionClient

        client = JobSubmissionClient(self.address)
        while True:
            try:
                submission = client.submit_job(entrypoint="true")
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
        while not client.get_job_status(submission).is_terminal():
            if time.monotonic() > deadline:
                raise RuntimeError("the Ray cluster took a job but did not run it")
            time.sleep(0.5)

    def add_node(self, num_cpus: int = 2) -> subprocess.Popen[bytes]:
        """A second raylet joining the head: another node as far as Ray is concerned."""
        node = [
            str(BIN / "ray"),
            "start",
            "--block",
            "--address",
            f"127.0.0.1:{self.gcs_port}",
            "--node-ip-address",
            "127.0.0.1",
            "--num-cpus",
            str(num_cpus),
            "--num-gpus",
            "0",
            "--object-store-memory",
            str(100 * 1024 * 1024),
            "--disable-usage-stats",
            *node_ports(),
        ]
        process = self._spawn(node, f"ray-node-{len(self.nodes)}.log")
        self.nodes.append(process)
        return process

    def kill_node(self, process: subprocess.Popen[bytes]) -> None:
        """A node lost at once: ``kill -9`` of its raylet and of every process it started (its Ray workers and the
        engines they run), found by parentage (Ray workers may leave the node's process group)."""
        import psutil

        try:
            doomed = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            doomed = []
        for victim in doomed:
            try:
                victim.kill()
            except psutil.NoSuchProcess:
                pass
        process.wait()
        if process in self.nodes:
            self.nodes.remove(process)

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.address}/api/version", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        for process in reversed(self.nodes):
            stop_group(process)
        self.nodes.clear()

    def _spawn(self, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / log_name).open("ab") as log:
            return subprocess.Popen(
                argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )


def stop_group(process: subprocess.Popen[bytes], grace: float = 8.0) -> None:
    """``ray start --block`` stops what it started on SIGTERM; whatever is left of its group is killed."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
