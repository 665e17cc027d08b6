"""The Celery consumer with a short broker reconnect back-off.

kombu retries a lost broker connection after 2, 4, 6, ... seconds, up to 30 s between tries: a worker could sit idle
for half a minute after Redis came back. Jobs are never lost meanwhile (Postgres holds them, recovery re-sends), but
capacity is; here the consumer retries every second or so (``interval_max``), which costs a Redis nothing.
"""

from __future__ import annotations

import functools
from typing import Any

from celery.worker.consumer import Consumer

RECONNECT_INTERVALS = {"interval_start": 0.5, "interval_step": 0.5, "interval_max": 1.5}


class QuickReconnectConsumer(Consumer):
    def ensure_connected(self, conn: Any) -> Any:
        conn.ensure_connection = functools.partial(conn.ensure_connection, **RECONNECT_INTERVALS)
        return super().ensure_connected(conn)
