"""The chaos suite, reduced: a few trials of each fault (``make chaos`` runs 50) against the whole service (API,
three Celery workers, a Postgres and a Redis of its own), with every count at zero: no job lost, run twice or stuck,
no event lost. ``CHAOS_TEST_TRIALS`` changes the number of trials. See :mod:`tests.chaos.chaos` for the definitions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chaos.chaos import COUNTS, format_table, run_chaos
from tests.chaos.cluster import ChaosSettings
from tests.chaos.local_redis import LocalRedis
from tests.local_postgres import LocalPostgres

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (LocalPostgres.available() and LocalRedis.available()),
        reason="needs the postgres and redis-server binaries to run servers of its own",
    ),
]


def test_faults_lose_no_job_run_none_twice_and_lose_no_event(tmp_path: Path) -> None:
    trials = int(os.environ.get("CHAOS_TEST_TRIALS", "2"))
    config = ChaosSettings(lease_seconds=8, heartbeat_seconds=1.5, recovery_seconds=2.0, max_steps=150)
    rows, failed, result = run_chaos(
        trials, config, json_path=tmp_path / "results.json", log_dir=tmp_path / "logs", drain_timeout=240
    )
    table = format_table(rows)
    print(table)
    problems = "\n".join(f"{p['kind']} [{p['fault']}] {p['job_id']}: {p['detail']}" for p in result["problems"])
    assert not result["lane_errors"], result["lane_errors"]
    for row in rows:
        assert all(row[kind] == 0 for kind in COUNTS), f"\n{table}\n{problems}\nlogs: {result['logs']}"
    assert not failed
    assert all(row["trials"] == trials for row in rows if row["fault"] != "-"), table
