"""Child processes: the engines that must not outlive their worker, and the command line that starts a worker (the dev
server, the tests and the chaos suite start workers with it)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable


def die_with_parent(ignore: tuple[signal.Signals, ...] = ()) -> Callable[[], None] | None:
    """On Linux, a ``preexec_fn`` that makes the kernel send SIGTERM to the engine when the worker process dies: a
    worker killed with SIGKILL (the OOM killer, a node drain) runs no ``finally``, and its engine must not train on
    as an orphan while the job is retried elsewhere. The signals in ``ignore`` are ignored by the new program (and,
    inherited through fork and exec, by what it starts) until it handles them itself."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1
    set_handler = libc.signal
    set_handler.argtypes = [ctypes.c_int, ctypes.c_void_p]
    set_handler.restype = ctypes.c_void_p
    sig_ign = ctypes.c_void_p(1)  # SIG_IGN; libc's signal(), not Python's: no interpreter state after fork

    def preexec() -> None:
        for sig in ignore:
            set_handler(int(sig), sig_ign)
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the worker died before prctl took effect
            os._exit(1)

    return preexec


def worker_command(
    python: str, queue: str, *, concurrency: int = 1, hostname: str | None = None, pool: str | None = None
) -> list[str]:
    """The command line of a worker process consuming ``queue`` (what the dev server, the tests and the chaos suite
    start; the images run the same through their entrypoint)."""
    argv = [python, "-m", "celery", "-A", "worker.celery_app", "worker", "--queues", queue]
    argv += ["--concurrency", str(concurrency), "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    if pool is not None:
        argv += ["--pool", pool]
    if hostname is not None:
        argv += ["--hostname", hostname]
    return argv
