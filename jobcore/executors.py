"""Where a training job runs: on a worker's own machine (``local``: its GPUs, ``accelerate launch`` for several) or as
a Ray job on a Ray cluster (``ray``: Ray Train over several nodes). The one rule, shared by the API (which records it
on the job) and the worker (which follows it), and how the service asks whether the cluster answers."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Literal

from jobcore.settings import ServiceSettings

logger = logging.getLogger(__name__)

Executor = Literal["local", "ray"]

RAY_CHECK_TIMEOUT_S = 3.0


def executor_for(settings: ServiceSettings, nodes: int) -> Executor:
    """Several nodes are only reachable through Ray; one node goes to Ray when the service says every job does."""
    return "ray" if nodes > 1 or settings.executor == "ray" else "local"


def ray_unreachable(address: str, timeout: float = RAY_CHECK_TIMEOUT_S) -> str | None:
    """Why the Ray cluster at ``address`` cannot take a job now, or None when its job server answers."""
    url = f"{address.rstrip('/')}/api/version"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - the operator's own address
            json.loads(response.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"the Ray cluster at {address} does not answer ({reason})"
    return None


def stop_ray_job(address: str, submission_id: str, timeout: float = RAY_CHECK_TIMEOUT_S) -> bool:
    """Ask the Ray cluster to stop a job (its REST API, so that the API needs no Ray installed); False when it could
    not be asked (the cluster is away: the job then runs to its end unobserved)."""
    url = f"{address.rstrip('/')}/api/jobs/{submission_id}/stop"
    request = urllib.request.Request(url, method="POST", data=b"")
    try:
        with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310 - the operator's own address
            return True
    except (urllib.error.URLError, OSError) as exc:
        logger.warning("could not stop Ray job %s at %s: %s", submission_id, address, exc)
        return False
