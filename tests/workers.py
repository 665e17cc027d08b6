"""Starting and stopping real Celery workers for tests and the chaos suite: one way, the service's own command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from jobcore.process import worker_command

REPO_ROOT = Path(__file__).resolve().parents[1]


def spawn_worker(env: Mapping[str, str], queue: str, hostname: str, log_path: Path) -> subprocess.Popen[bytes]:
    """A prefork worker with one pool process, in its own process group (a test can kill it whole), logging to
    ``log_path``; started, not yet answering (see :func:`wait_answering`)."""
    return subprocess.Popen(
        worker_command(sys.executable, queue, concurrency=1, hostname=hostname, pool="prefork"),
        cwd=REPO_ROOT,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_answering(app: Any, names: Iterable[str], timeout: float, alive: Any = None) -> set[str]:
    """Until every worker in ``names`` answers a ping (``alive(name)`` False drops one); those that did not."""
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending and time.monotonic() < deadline:
        try:
            replies = app.control.ping(destination=sorted(pending), timeout=0.5)
        except Exception:  # the broker is away
            time.sleep(0.2)
            continue
        for reply in replies:
            pending -= set(reply)
        if alive is not None:
            pending = {name for name in pending if alive(name)}
    return pending


def stop_worker(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """A warm shutdown (SIGTERM to the group), then a kill when it takes longer than ``timeout``."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
