"""Shared test setup: offline Hugging Face, single-threaded torch, cached tiny models."""

import os
import sys
import tempfile
from pathlib import Path

# Set before anything imports torch or huggingface_hub, which read these once at import.
# Tests must never reach the hub; torch on a 2-core machine is steadier (and not slower) with one thread.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The engine's caches (preprocessed data) stay out of the user's home during tests.
os.environ.setdefault("FINETUNING_CACHE_DIR", tempfile.mkdtemp(prefix="finetuning-test-cache-"))

REPO_ROOT = Path(__file__).resolve().parents[1]
# Lets plain `pytest` (not only `python -m pytest`) import the uninstalled package.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

from finetuning.tiny import cached_tiny_model  # noqa: E402
from tests.s3server import S3Server, aws_environment  # noqa: E402

TINY_MODEL_CACHE = REPO_ROOT / ".cache" / "tiny-models"


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """A tiny llama with a byte-level BPE tokenizer and no pad token, built once and cached on disk."""
    return cached_tiny_model(TINY_MODEL_CACHE)


@pytest.fixture(scope="session")
def tiny_model_dir_with_pad() -> Path:
    """Like tiny_model_dir, but the tokenizer has a dedicated <pad> token."""
    return cached_tiny_model(TINY_MODEL_CACHE, with_pad_token=True)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server for the whole run, in the AWS environment variables of this process and its children."""
    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log")
    server.start()
    with aws_environment(server.env):
        yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A new, empty bucket on that server."""
    import secrets

    import boto3

    name = f"test-{secrets.token_hex(6)}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name
