"""The command line that starts a worker (the dev server, the tests and the chaos suite start workers with it)."""

from __future__ import annotations


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
