"""A worker asked to stop hands its running job back instead of making the shutdown wait for it (or dropping it).

How the request travels (prefork pool, the default):

1. Kubernetes, a node drain or a person sends ``SIGTERM`` to the Celery worker's main process. Celery starts a warm
   shutdown: it stops consuming, then waits for the running tasks, which for a training job could take hours.
2. Celery calls ``worker_shutting_down`` handlers in the main process (from its signal handler). Ours marks this
   process as shutting down (for the solo and threads pools, which run jobs here) and sends :data:`CHILD_SIGNAL`
   (``SIGUSR2``) to each pool process; their pids come from the pool's ``info`` (what ``celery inspect stats``
   shows), captured at ``worker_init``. Celery resets ``SIGTERM`` in pool processes to its default (terminate), which
   is why the main process forwards a signal of its own rather than ``SIGTERM``.
3. In each pool process a handler installed at ``worker_process_init`` marks that process as shutting down. The job
   runner (:mod:`worker.runner`) sees the mark within a tick and asks its engine to stop: ``SIGUSR1`` to the engine's
   process group (a training run saves a checkpoint at its next step and exits 75), ``SIGTERM`` for the other jobs.
4. The runner hands the job back (``queued``, a ``job`` event with reason ``worker_shutdown`` and the checkpoint, the
   run not counted against ``max_attempts``), sends its message again and returns; the pool drains and the worker
   exits. After ``shutdown_grace_seconds`` the engine is killed and the job is handed back all the same: it resumes
   from its newest periodic checkpoint.

Send ``SIGTERM`` to the main process only (systemd: ``KillMode=mixed``): a ``SIGTERM`` that reaches a pool process
directly still ends it at once, as Celery intends, and its job is then found by recovery once its lease expires.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

logger = logging.getLogger(__name__)

CHILD_SIGNAL = signal.SIGUSR2


class _Shutdown:
    requested_at: float | None = None  # time.monotonic() of the request, in this process


_STATE = _Shutdown()
_controller: dict[str, Any] = {}


def request() -> None:
    """Mark this process as shutting down (safe in a signal handler: it only sets an attribute)."""
    if _STATE.requested_at is None:
        _STATE.requested_at = time.monotonic()


def requested() -> bool:
    return _STATE.requested_at is not None


def reset() -> None:
    """Forget a request (a fresh pool process, tests)."""
    _STATE.requested_at = None


def pool_pids() -> list[int]:
    """The pids of the worker's pool processes (none for the solo and threads pools)."""
    controller = _controller.get("worker")
    pool = getattr(controller, "pool", None)
    if pool is None:
        return []
    try:
        pids = pool.info.get("processes") or []
    except Exception:  # a pool without processes, or one already closed
        return []
    return [int(pid) for pid in pids if isinstance(pid, int) and pid != os.getpid()]


def _on_child_signal(signum: int, frame: Any) -> None:
    request()


def install_shutdown() -> None:
    """Connect the handlers of the steps above to Celery's signals (in the worker's main process, before it forks)."""
    from celery import signals

    @signals.worker_init.connect(weak=False)
    def _remember(sender: Any = None, **_: object) -> None:
        _controller["worker"] = sender

    @signals.worker_process_init.connect(weak=False)
    def _child(**_: object) -> None:
        reset()  # a request seen by the main process before this pool process was forked is not its own
        signal.signal(CHILD_SIGNAL, _on_child_signal)

    @signals.worker_shutting_down.connect(weak=False)
    def _shutting_down(sig: str = "", how: str = "", **_: object) -> None:
        request()
        for pid in pool_pids():
            try:
                os.kill(pid, CHILD_SIGNAL)
            except ProcessLookupError:
                pass
