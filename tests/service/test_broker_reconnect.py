"""A worker is back on the broker within seconds of a Redis restart (not after kombu's back-off of up to 30 s)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest
from redis import exceptions as redis_errors

from jobcore.settings import ServiceSettings
from tests.chaos.local_redis import LocalRedis
from tests.service.conftest import start_worker
from tests.workers import stop_worker

pytestmark = pytest.mark.skipif(not LocalRedis.available(), reason="redis-server is not installed")


def test_a_worker_answers_again_soon_after_redis_returns(settings: ServiceSettings, tmp_path: Path) -> None:
    from worker.celery_app import create_celery

    with LocalRedis(tmp_path / "redis") as redis:
        local = settings.model_copy(update={"broker_url": redis.url, "default_queue": f"q-{secrets.token_hex(3)}"})
        hostname = f"reconnect-{secrets.token_hex(3)}@localhost"
        worker = start_worker(local, tmp_path / "worker.log", hostname=hostname)
        try:
            redis.stop()
            time.sleep(12.5)  # kombu by default tries again 2, 6, 12 and 20 s after the loss: the next at 20 s
            redis.start()
            back_at = time.monotonic()
            app = create_celery(local)
            answered = None
            while time.monotonic() - back_at < 30:
                try:
                    replies = app.control.ping(destination=[hostname], timeout=0.5)
                except redis_errors.ConnectionError:  # the client's own first tries after the restart
                    time.sleep(0.1)
                    continue
                if replies:
                    answered = time.monotonic() - back_at
                    break
            assert answered is not None, "the worker did not come back within 30 s"
            assert answered < 3, f"the worker answered {answered:.1f} s after Redis returned"
        finally:
            stop_worker(worker)
