"""Child processes the engine and the service start: they must not outlive the process that started them."""

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
