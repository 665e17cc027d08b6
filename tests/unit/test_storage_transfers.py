"""Transfers against a real S3 API: moto's server over HTTP, reached only through the AWS environment variables.

What is downloaded is read off the server's own request log (one line per request), so "downloaded once" means
one GET reached the server, not that the code under test says so. Covered: the download cache (once per machine and
across processes, a changed object is a new entry, LRU eviction that spares entries another process uses), the
uploader through a storage outage (a proxy that refuses connections), resuming from the newest checkpoint whose
upload completed, folder downloads that cannot write outside their folder, and errors people can act on."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from finetuning.contract import UPLOAD_MARKER
from finetuning.storage import S3Uri, StorageError
from finetuning.storage import cache as cache_module
from finetuning.storage import client as client_module
from finetuning.storage.cache import CachedInput, DownloadCache, release_all
from finetuning.storage.client import exists, head, list_objects
from finetuning.storage.places import OutputPlace, fetch_last_checkpoint, newest_uploaded_checkpoint
from finetuning.storage.transfer import download_tree, upload_tree
from finetuning.storage.uploader import Uploader
from tests.s3server import AWS_ENV, S3Server, free_port
from tests.tcp_proxy import TcpProxy

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = AWS_ENV["AWS_SECRET_ACCESS_KEY"]


@pytest.fixture(autouse=True)
def _fresh_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test builds its S3 clients from its own environment and settings; shared locks end with the test."""
    monkeypatch.setattr(client_module, "_clients", {})
    yield
    release_all()


@pytest.fixture
def fail_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """One attempt per request and short timeouts: a refused connection fails in milliseconds, not after
    botocore's back-off."""
    monkeypatch.setattr(client_module, "MAX_ATTEMPTS", 1)
    monkeypatch.setattr(client_module, "CONNECT_TIMEOUT_S", 2)
    monkeypatch.setattr(client_module, "READ_TIMEOUT_S", 5)
    monkeypatch.setattr(client_module, "_clients", {})


@pytest.fixture
def proxy(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[TcpProxy]:
    """The storage server as reached through a proxy that can be taken down (the client sees an outage)."""
    proxy = TcpProxy(("127.0.0.1", s3_server.port))
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    yield proxy
    proxy.close()


def direct(server: S3Server) -> Any:
    """A plain boto3 client straight to the server (past the proxy, when a test has one)."""
    return boto3.client("s3", endpoint_url=server.endpoint)


def put(server: S3Server, bucket: str, key: str, body: bytes) -> S3Uri:
    direct(server).put_object(Bucket=bucket, Key=key, Body=body)
    return S3Uri(bucket, key)


def stored_keys(server: S3Server, bucket: str, prefix: str) -> list[str]:
    pages = direct(server).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def requests(server: S3Server, method: str, bucket: str, key: str) -> int:
    """How many ``method`` requests for the object reached the server (its log line is written before it answers;
    werkzeug colours some lines, hence the escape sequences)."""
    pattern = re.compile(rf'"(?:\x1b\[[0-9;]*m)*{method} /{re.escape(bucket)}/{re.escape(key)} HTTP/')
    return len(pattern.findall(server.log_path.read_text(errors="replace")))


def entry_uris(root: Path) -> set[str]:
    return {json.loads(meta.read_text())["uri"] for meta in root.glob("*/entry.json")}


def no_secret(said: object) -> None:
    assert SECRET not in str(said)
    assert not isinstance(said, StorageError) or SECRET not in said.message


# -- the download cache ----------------------------------------------------------------------------------------------


def test_a_file_is_downloaded_once_and_a_changed_object_is_a_new_entry(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    root = tmp_path / "cache"
    uri = put(s3_server, s3_bucket, "data/train.jsonl", b"one\n")
    first = DownloadCache(root, 10**9).file(uri)
    assert not first.hit
    assert first.path.read_bytes() == b"one\n"
    assert first.size == 4
    assert requests(s3_server, "GET", s3_bucket, "data/train.jsonl") == 1

    again = DownloadCache(root, 10**9).file(uri)  # this process already uses the entry
    release_all()
    other_job = DownloadCache(root, 10**9).file(uri)  # as a later job on the machine sees it
    for cached in (again, other_job):
        assert cached.hit
        assert cached.path == first.path
    assert requests(s3_server, "GET", s3_bucket, "data/train.jsonl") == 1  # nothing downloaded again

    put(s3_server, s3_bucket, "data/train.jsonl", b"changed\n")  # a new ETag and size: never the stale copy
    changed = DownloadCache(root, 10**9).file(uri)
    assert not changed.hit
    assert changed.path != first.path
    assert changed.path.read_bytes() == b"changed\n"
    assert first.path.read_bytes() == b"one\n"  # the old entry stays for whoever still uses it
    assert requests(s3_server, "GET", s3_bucket, "data/train.jsonl") == 2
    assert not list(root.glob("*.partial"))


def test_a_folder_is_downloaded_once_with_its_layout(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    root = tmp_path / "cache"
    files = {"config.json": b"{}", "sub/weights.bin": b"w" * 1000, "sub/deeper/vocab.txt": b"a\nb\n"}
    for name, body in files.items():
        put(s3_server, s3_bucket, f"model/{name}", body)
    put(s3_server, s3_bucket, "model/empty/", b"")  # a "folder" placeholder some tools write
    put(s3_server, s3_bucket, "model2/config.json", b"not this one")  # shares the prefix string, not the folder
    uri = S3Uri(s3_bucket, "model")

    first = DownloadCache(root, 10**9).folder(uri)
    assert not first.hit
    assert {p.relative_to(first.path).as_posix() for p in first.path.rglob("*") if p.is_file()} == set(files)
    for name, body in files.items():
        assert (first.path / name).read_bytes() == body
    assert first.size == sum(len(body) for body in files.values())
    release_all()
    second = DownloadCache(root, 10**9).folder(uri)
    assert second.hit
    assert second.path == first.path
    for name in files:
        assert requests(s3_server, "GET", s3_bucket, f"model/{name}") == 1
    assert requests(s3_server, "GET", s3_bucket, "model2/config.json") == 0

    with pytest.raises(StorageError) as error:
        DownloadCache(root, 10**9).folder(S3Uri(s3_bucket, "nothing-here"))
    assert error.value.code == "storage_object_not_found"


CHILD = r"""
import json, sys, time, hashlib
from pathlib import Path
from finetuning.storage import S3Uri
from finetuning.storage.cache import DownloadCache
from finetuning.storage.client import client
root, uri, go = Path(sys.argv[1]), S3Uri.parse(sys.argv[2]), Path(sys.argv[3])
max_bytes, hold = int(sys.argv[4]), float(sys.argv[5])
client()  # boto3 imported and the client built before the start line
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
start = time.time()
got = DownloadCache(root, max_bytes).file(uri)
end = time.time()
digest = hashlib.sha256(got.path.read_bytes()).hexdigest()
print(json.dumps({"path": str(got.path), "hit": got.hit, "start": start, "end": end, "sha256": digest}), flush=True)
time.sleep(hold)
"""


def start_child(root: Path, uri: S3Uri, go: Path, *, max_bytes: int = 10**9, hold: float = 0) -> subprocess.Popen[str]:
    """A process of its own (the same AWS environment) that fetches ``uri`` through the cache once ``go`` exists,
    then keeps using it (its shared lock) for ``hold`` seconds."""
    args = [sys.executable, "-c", CHILD, str(root), str(uri), str(go), str(max_bytes), str(hold)]
    child = subprocess.Popen(args, cwd=REPO_ROOT, env=dict(os.environ), stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    return child


def child_answer(child: subprocess.Popen[str]) -> dict[str, Any]:
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line, f"the child exited with {child.wait()}"
    answer: dict[str, Any] = json.loads(line)
    return answer


def test_processes_that_need_one_object_at_once_download_it_once(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    body = os.urandom(24 * 2**20)  # long enough to download for the other processes to queue behind it
    uri = put(s3_server, s3_bucket, "big.bin", body)
    put(s3_server, s3_bucket, "same-size.bin", body)
    DownloadCache(tmp_path / "reference", 10**9).file(S3Uri(s3_bucket, "same-size.bin"))
    one_download = requests(s3_server, "GET", s3_bucket, "same-size.bin")  # boto3 fetches it in ranged parts
    assert one_download >= 1
    go = tmp_path / "go"
    children = [start_child(tmp_path / "cache", uri, go) for _ in range(3)]
    try:
        go.touch()
        answers = [child_answer(child) for child in children]
    finally:
        for child in children:
            child.kill()
            child.wait()
    assert max(a["start"] for a in answers) < min(a["end"] for a in answers), "the processes did not overlap"
    assert requests(s3_server, "GET", s3_bucket, "big.bin") == one_download
    assert sorted(a["hit"] for a in answers) == [False, True, True]  # one downloaded, the others waited for it
    assert len({a["path"] for a in answers}) == 1
    assert {a["sha256"] for a in answers} == {hashlib.sha256(body).hexdigest()}
    assert len(list((tmp_path / "cache").glob("*/entry.json"))) == 1
    assert not list((tmp_path / "cache").glob("*.partial"))


def test_eviction_takes_the_least_recently_used_entry(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    size = 1000
    a, b, c = (put(s3_server, s3_bucket, f"{name}.bin", name.encode() * size) for name in "abc")
    cache = DownloadCache(tmp_path / "cache", 2 * size + 10)  # room for two
    for uri in (a, b):
        cache.file(uri)
        release_all()  # a job that used it ended
        time.sleep(0.02)
    assert cache.file(a).hit  # a is used again: b is now the least recently used
    release_all()
    time.sleep(0.02)
    cache.file(c)
    assert entry_uris(tmp_path / "cache") == {str(a), str(c)}
    assert requests(s3_server, "GET", s3_bucket, "a.bin") == 1


def test_an_entry_another_process_uses_is_never_evicted(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    size = 1000
    a, b, c = (put(s3_server, s3_bucket, f"{name}.bin", name.encode() * size) for name in "abc")
    root = tmp_path / "cache"
    go = tmp_path / "go"
    go.touch()
    holder = start_child(root, a, go, hold=60)  # another job uses a: the oldest entry, and the only one in use
    try:
        assert not child_answer(holder)["hit"]
        time.sleep(0.02)
        cache = DownloadCache(root, size + 10)  # room for one
        cache.file(b)
        release_all()
        time.sleep(0.02)
        cache.file(c)  # over the limit: b goes; a is older but in use, c is the newest
        assert entry_uris(root) == {str(a), str(c)}
        release_all()
        DownloadCache(root, 0).evict()  # even with no room at all
        assert entry_uris(root) == {str(a)}
    finally:
        holder.kill()
        holder.wait()
    DownloadCache(root, 0).evict()  # the process ended: its lock went with it
    assert entry_uris(root) == set()


def test_an_entry_evicted_between_its_download_and_its_use_is_fetched_again(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process evicts the entry in the moment after its exclusive (download) lock is given back and before
    the shared (use) lock is taken: the path handed out must still exist."""
    uri = put(s3_server, s3_bucket, "model.bin", b"m" * 100)
    root = tmp_path / "cache"
    take_shared = cache_module._hold_shared
    evicted: list[int] = []

    def evict_first(lock: Path) -> None:
        if not evicted:
            evicted.append(DownloadCache(root, 0).evict())
        take_shared(lock)

    monkeypatch.setattr(cache_module, "_hold_shared", evict_first)
    got: CachedInput = DownloadCache(root, 10**9).file(uri)
    assert evicted == [100]
    assert got.path.read_bytes() == b"m" * 100
    assert not got.hit
    release_all()
    assert DownloadCache(root, 0).evict() == 100  # the shared lock was the entry's own: no stray locks held


# -- folders in the bucket that would land outside the local folder --------------------------------------------------


@pytest.mark.parametrize("kind", ["empty segment", "dot-dot"])
def test_a_folder_download_never_writes_outside_its_folder(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, kind: str
) -> None:
    # the server keeps keys as they are: "ckpt//x" would make the local path absolute ("/x") and ".." would climb;
    # both are made to point into tmp_path, so that a regression writes nothing elsewhere
    if kind == "empty segment":
        key = f"ckpt//{(tmp_path / 'absolute.txt').as_posix().lstrip('/')}"
    else:
        key = "ckpt/../../climbed.txt"
    put(s3_server, s3_bucket, "ckpt/ok.txt", b"ok")
    put(s3_server, s3_bucket, key, b"planted")
    target = tmp_path / "a" / "b" / "dest"
    with pytest.raises(StorageError) as error:
        download_tree(S3Uri(s3_bucket, "ckpt"), target)
    assert error.value.code == "storage_error"
    assert key in error.value.message
    assert not target.exists()  # refused before anything was written
    with pytest.raises(StorageError):
        DownloadCache(tmp_path / "a" / "b" / "cache", 10**9).folder(S3Uri(s3_bucket, "ckpt"))
    written = {p for p in tmp_path.rglob("*") if p.is_file()}
    assert not any(p.read_bytes() == b"planted" for p in written)
    assert not list((tmp_path / "a" / "b" / "cache").glob("*.partial"))


# -- the uploader through an outage ----------------------------------------------------------------------------------


def checkpoint_folder(folder: Path) -> dict[str, bytes]:
    files = {
        "adapter_model.safetensors": os.urandom(20_000),
        "trainer_state.json": b'{"global_step": 2}',
        "optimizer/state.pt": os.urandom(5_000),
    }
    for name, body in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(body)
    return files


def test_an_upload_waits_out_an_outage_and_completes_with_its_marker(
    s3_server: S3Server, s3_bucket: str, proxy: TcpProxy, fail_fast: None, tmp_path: Path
) -> None:
    local = tmp_path / "out" / "checkpoint-2"
    files = checkpoint_folder(local)
    remote = S3Uri(s3_bucket, "runs/one/checkpoint-2")
    reports: list[dict[str, Any]] = []
    uploader = Uploader(retry_seconds=60, report=lambda **fields: reports.append(fields), snapshots=tmp_path / "snap")
    try:
        proxy.down()
        uploader.submit(local, remote, marker=True, snapshot=True)
        deadline = time.monotonic() + 10
        while not any(r["state"] == "retrying" for r in reports):
            assert time.monotonic() < deadline, reports
            time.sleep(0.01)
        retrying = next(r for r in reports if r["state"] == "retrying")
        assert retrying["uri"] == str(remote)
        no_secret(retrying["error"])
        # nothing reached the bucket, and both the caller's folder and the uploader's snapshot are kept
        assert stored_keys(s3_server, s3_bucket, "runs/") == []
        assert {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()} == set(files)
        snapshots = list((tmp_path / "snap").iterdir())
        assert len(snapshots) == 1
        assert (snapshots[0] / "adapter_model.safetensors").read_bytes() == files["adapter_model.safetensors"]
        proxy.up()
        uploader.wait(timeout=20)
    finally:
        uploader.close()
    assert proxy.refused > 0
    assert uploader.failed is None
    assert reports[-1]["state"] == "uploaded"
    assert reports[-1]["bytes"] == sum(len(body) for body in files.values())
    prefix = "runs/one/checkpoint-2/"
    assert stored_keys(s3_server, s3_bucket, "runs/") == sorted(
        [f"{prefix}{name}" for name in files] + [prefix + UPLOAD_MARKER]
    )
    client = direct(s3_server)
    for name, body in files.items():
        assert client.get_object(Bucket=s3_bucket, Key=prefix + name)["Body"].read() == body
    marker = json.loads(client.get_object(Bucket=s3_bucket, Key=prefix + UPLOAD_MARKER)["Body"].read())
    assert marker["files"] == {name: len(body) for name, body in files.items()}
    assert not list((tmp_path / "snap").iterdir())  # the snapshot goes once the upload is confirmed
    assert {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()} == set(files)
    # the marker went up last: a reader that sees it finds every file
    puts = re.findall(
        rf"PUT /{re.escape(s3_bucket)}/{re.escape(prefix)}(\S+) HTTP/", s3_server.log_path.read_text(errors="replace")
    )
    assert puts[-1] == UPLOAD_MARKER
    assert set(puts) == set(files) | {UPLOAD_MARKER}


def test_an_upload_given_up_on_names_the_local_copy(
    s3_server: S3Server, s3_bucket: str, proxy: TcpProxy, fail_fast: None, tmp_path: Path
) -> None:
    local = tmp_path / "out" / "checkpoint-4"
    files = checkpoint_folder(local)
    reports: list[dict[str, Any]] = []
    uploader = Uploader(retry_seconds=2.5, report=lambda **fields: reports.append(fields))
    proxy.down()
    started = time.monotonic()
    try:
        uploader.submit(local, S3Uri(s3_bucket, "runs/two/checkpoint-4"), marker=True)
        with pytest.raises(StorageError) as error:
            uploader.wait(timeout=20)
    finally:
        uploader.close()
    assert time.monotonic() - started < 10
    assert error.value.code == "storage_error"
    assert str(local) in error.value.message
    assert uploader.failed is error.value
    assert [r["state"] for r in reports] == ["retrying", "failed"]  # one retry after 1 s; the next would pass 2.5 s
    no_secret(error.value)
    for report in reports:
        no_secret(report)
    for name, body in files.items():
        assert (local / name).read_bytes() == body
    proxy.up()
    assert stored_keys(s3_server, s3_bucket, "runs/") == []


# -- resuming from the bucket ----------------------------------------------------------------------------------------


def test_resuming_never_picks_a_half_uploaded_checkpoint(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    made = tmp_path / "made"
    two = checkpoint_folder(made / "checkpoint-2")
    checkpoint_folder(made / "checkpoint-3")
    remote = S3Uri(s3_bucket, "runs/resume")
    upload_tree(made / "checkpoint-2", remote / "checkpoint-2", marker=True)
    upload_tree(made / "checkpoint-3", remote / "checkpoint-3", marker=False)  # cut off before its marker
    assert newest_uploaded_checkpoint(remote) == str(remote / "checkpoint-2")

    place = OutputPlace(tmp_path / "staging" / "runs" / "resume", remote)
    fetched = fetch_last_checkpoint(place)
    assert fetched == place.local / "checkpoint-2"
    for name, body in two.items():
        assert (fetched / name).read_bytes() == body
    assert not (place.local / "checkpoint-3").exists()
    assert not list(place.local.glob("*.partial"))
    got = {name: requests(s3_server, "GET", s3_bucket, f"runs/resume/checkpoint-2/{name}") for name in two}
    assert got == dict.fromkeys(two, 1)
    assert requests(s3_server, "GET", s3_bucket, "runs/resume/checkpoint-3/adapter_model.safetensors") == 0

    # a complete local copy (a run resumed on the same machine) is used as it is
    assert fetch_last_checkpoint(place) == fetched
    assert {name: requests(s3_server, "GET", s3_bucket, f"runs/resume/checkpoint-2/{name}") for name in two} == got

    # a local copy cut off while it was written (no trainer state) is replaced by the bucket's
    (fetched / "trainer_state.json").unlink()
    (fetched / "adapter_model.safetensors").write_bytes(b"torn")
    assert fetch_last_checkpoint(place) == fetched
    for name, body in two.items():
        assert (fetched / name).read_bytes() == body

    assert fetch_last_checkpoint(OutputPlace(tmp_path / "local-only")) is None
    assert fetch_last_checkpoint(OutputPlace(tmp_path / "x", S3Uri(s3_bucket, "runs/none-yet"))) is None


# -- errors ----------------------------------------------------------------------------------------------------------


def test_a_missing_object_or_bucket_is_not_found(s3_bucket: str) -> None:
    missing = S3Uri(s3_bucket, "no/such/object.bin")
    with pytest.raises(StorageError) as error:
        head(missing)
    assert error.value.code == "storage_object_not_found"
    assert str(missing) in error.value.message
    assert not exists(missing)
    no_secret(error.value)

    bucket = S3Uri(f"{s3_bucket}-gone", "model")
    with pytest.raises(StorageError) as error:
        head(bucket / "config.json")
    assert error.value.code == "storage_object_not_found"
    with pytest.raises(StorageError) as error:
        list(list_objects(bucket))
    assert error.value.code == "storage_object_not_found"
    assert "no such bucket" in error.value.message
    no_secret(error.value)
    # wrong credentials cannot be told apart on moto's server (it accepts any): not tested here


def test_an_unreachable_endpoint_fails_quickly_and_says_where_to_look(
    s3_server: S3Server, fail_fast: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    started = time.monotonic()
    for call in (lambda: head(S3Uri("data", "x.bin")), lambda: list(list_objects(S3Uri("data", "model")))):
        with pytest.raises(StorageError) as error:
            call()
        assert error.value.code == "storage_unreachable"
        assert "AWS_ENDPOINT_URL" in error.value.message
        no_secret(error.value)
    assert time.monotonic() - started < 5


def test_missing_credentials_are_named(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StorageError) as error:
        head(S3Uri("data", "x.bin"))
    assert error.value.code == "storage_credentials_missing"
    assert "AWS_ACCESS_KEY_ID" in error.value.message
