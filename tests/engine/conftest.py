"""Fixtures for tests that train."""

import os
import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def restore_environ() -> Iterator[None]:
    """Tracking set-up writes MLflow's environment variables, and a run in this process sets MLflow's tracking URI and
    experiment as module state: keep each test's to itself."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    if "mlflow" in sys.modules:
        import mlflow
        from mlflow.tracking import fluent

        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None: back to what the environment says
        fluent._active_experiment_id = None
