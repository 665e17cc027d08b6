"""Fixtures for tests that train."""

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def restore_environ() -> Iterator[None]:
    """Tracking set-up writes MLflow's environment variables; keep each run's to itself."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
