"""The download cache against a real S3 API (moto's server): an object is fetched once per machine, a changed object
is a new entry, two processes that need the same object at once download it once, and eviction takes the least
recently used entry but never one a process is using."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from finetuning.storage import S3Uri
from finetuning.storage.cache import DownloadCache, release_all
from tests.s3server import S3Server

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _release() -> Iterator[None]:
    yield
    release_all()


def put(bucket: str, key: str, body: bytes) -> S3Uri:
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    return S3Uri(bucket, key)


def entries(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/entry.json"))


def test_a_file_and_a_folder_are_fetched_once(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    cache = DownloadCache(tmp_path, 10**9)
    uri = put(s3_bucket, "data/a.jsonl", b"one\n")
    first = cache.file(uri)
    second = cache.file(uri)
    assert (first.hit, second.hit) == (False, True)
    assert first.path == second.path
    assert first.path.read_bytes() == b"one\n"
    put(s3_bucket, "data/a.jsonl", b"changed\n")  # a new ETag: a new entry, never the stale file
    third = cache.file(uri)
    assert not third.hit
    assert third.path.read_bytes() == b"changed\n"

    put(s3_bucket, "model/config.json", b"{}")
    put(s3_bucket, "model/sub/weights.bin", b"w" * 100)
    folder = cache.folder(S3Uri(s3_bucket, "model"))
    assert (folder.path / "config.json").read_bytes() == b"{}"
    assert (folder.path / "sub" / "weights.bin").stat().st_size == 100
    assert folder.size == 102
    assert cache.folder(S3Uri(s3_bucket, "model")).hit


FETCH = """
import json, sys
from pathlib import Path
from finetuning.storage import S3Uri
from finetuning.storage.cache import DownloadCache
got = DownloadCache(Path(sys.argv[1]), 10**9).file(S3Uri.parse(sys.argv[2]))
print(json.dumps({"path": str(got.path), "hit": got.hit}), flush=True)
if len(sys.argv) > 3:
    import time; time.sleep(float(sys.argv[3]))
"""


def fetch_in_process(cache: Path, uri: S3Uri, hold: float | None = None) -> subprocess.Popen[str]:
    args = [sys.executable, "-c", FETCH, str(cache), str(uri)] + ([str(hold)] if hold is not None else [])
    return subprocess.Popen(args, cwd=REPO_ROOT, env=dict(os.environ), stdout=subprocess.PIPE, text=True)


def test_two_processes_download_one_object_once(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    uri = put(s3_bucket, "big.bin", os.urandom(8 * 2**20))
    processes = [fetch_in_process(tmp_path, uri) for _ in range(3)]
    answers = [json.loads(p.communicate(timeout=60)[0]) for p in processes]
    assert len({a["path"] for a in answers}) == 1
    assert sorted(a["hit"] for a in answers) == [False, True, True]  # one downloaded, the others waited and used it
    assert len(entries(tmp_path)) == 1


def test_eviction_takes_the_least_recently_used_but_never_one_in_use(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    size = 1000
    a, b, c = (put(s3_bucket, f"{name}.bin", name.encode() * size) for name in ("a", "b", "c"))
    holder = fetch_in_process(tmp_path, a, hold=30)  # another process uses a (a shared lock) for a while
    assert holder.stdout is not None
    json.loads(holder.stdout.readline())
    try:
        cache = DownloadCache(tmp_path, 2 * size + 10)
        time.sleep(0.05)
        cache.file(b)
        release_all()  # this process is done with b (a process holds what it fetched until it ends)
        time.sleep(0.05)
        cache.file(c)  # three entries, room for two: a is the oldest but in use, so b goes
        kept = {json.loads((e / "entry.json").read_text())["uri"] for e in entries(tmp_path)}
        assert kept == {str(a), str(c)}
    finally:
        holder.kill()
        holder.wait()
    release_all()
    cache.file(b)  # a is no longer in use: now it is the least recently used
    kept = {json.loads((e / "entry.json").read_text())["uri"] for e in entries(tmp_path)}
    assert kept == {str(b), str(c)}
