"""The preprocessing cache under its size limit, with real files, real ``flock`` locks and real processes: least
recently used entries go first until the rest fit; an entry another live process uses stays until that process ends;
what this process uses (data it prepared or found) stays; staging leftovers of killed runs go once they are old; and
two SFT runs on different data with a tiny limit: the second run succeeds and leaves only its own entries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from finetuning.cache_entries import lock_path, record_use, release_all
from finetuning.config.data import DataConf
from finetuning.data.preference import prepare_preference_datasets
from finetuning.data.preprocessing_cache import LEFTOVER_AGE_S, evict_preprocessing_cache, use_entry
from finetuning.tiny import tiny_chat_records, write_jsonl
from tests.engine.sft_helpers import run_cli, sft_config

REPO_ROOT = Path(__file__).resolve().parents[2]
HOUR = LEFTOVER_AGE_S

# uses an entry (the engine's own call) until its stdin closes
HOLDER = """
import sys
from pathlib import Path
from finetuning.data.preprocessing_cache import use_entry
use_entry(Path(sys.argv[1]))
print("holding", flush=True)
sys.stdin.read()
"""


@pytest.fixture(autouse=True)
def _release() -> Iterator[None]:
    yield
    release_all()


def make_entry(root: Path, name: str, size: int, *, used_s_ago: float) -> Path:
    """An entry folder of ``size`` bytes (in two files, one in a subfolder) last used ``used_s_ago`` seconds ago."""
    folder = root / name
    (folder / "sub").mkdir(parents=True)
    (folder / "meta.json").write_bytes(b"m" * (size // 2))
    (folder / "sub" / "shard.arrow").write_bytes(b"s" * (size - size // 2))
    age(folder, used_s_ago)
    return folder


def age(path: Path, seconds: float) -> None:
    """Set the modification time of ``path`` and everything in it to ``seconds`` ago."""
    when = time.time() - seconds
    for item in [path, *path.rglob("*")]:
        os.utime(item, (when, when))


def entry_names(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}


def test_least_recently_used_entries_go_first_until_the_rest_fit(tmp_path: Path) -> None:
    root = tmp_path / "preprocessed"
    make_entry(root, "src-01", 100, used_s_ago=400)
    make_entry(root, "packed-02", 200, used_s_ago=300)
    make_entry(root, "pref-03", 300, used_s_ago=200)
    make_entry(root, "prompt-04", 50, used_s_ago=100)
    (root / "notes").mkdir()  # not an entry: never counted nor touched
    (root / "notes" / "big").write_bytes(b"n" * 10_000)
    # src-01 is used again now: packed-02 becomes the least recently used
    record_use(root / "src-01" / "meta.json")

    eviction = evict_preprocessing_cache(root, 400)  # 650 bytes of entries: 250 must go
    assert [e.folder.name for e in eviction.evicted] == ["packed-02", "pref-03"]
    assert eviction.freed == 500
    assert entry_names(root) == {"src-01", "prompt-04", "notes"}
    assert not (root / "packed-02.lock").exists()  # an evicted entry's lock file goes with it
    assert not list(root.glob("*.evicting-*"))

    assert evict_preprocessing_cache(root, 150).evicted == []  # 150 bytes: they fit
    assert [e.folder.name for e in evict_preprocessing_cache(root, 149).evicted] == ["prompt-04"]


def test_an_entry_another_process_uses_stays_until_that_process_ends(tmp_path: Path) -> None:
    root = tmp_path / "preprocessed"
    held = make_entry(root, "src-0a", 100, used_s_ago=500)  # the oldest
    make_entry(root, "src-0b", 100, used_s_ago=100)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(held)],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        eviction = evict_preprocessing_cache(root, 0)
        assert [e.folder.name for e in eviction.evicted] == ["src-0b"]
        assert entry_names(root) == {"src-0a"}
    finally:
        assert holder.stdin is not None
        holder.stdin.close()  # the process ends: its lock goes with it
        holder.wait(timeout=30)
    assert [e.folder.name for e in evict_preprocessing_cache(root, 0).evicted] == ["src-0a"]
    assert not root.joinpath("src-0a").exists()


def test_entries_this_process_uses_stay(tmp_path: Path) -> None:
    root = tmp_path / "preprocessed"
    data = tmp_path / "pairs.jsonl"
    rows = [
        {
            "prompt_messages": [{"role": "user", "content": f"q{i}"}],
            "chosen_messages": [{"role": "assistant", "content": f"good {i}"}],
            "rejected_messages": [{"role": "assistant", "content": f"bad {i}"}],
        }
        for i in range(4)
    ]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    conf = DataConf.model_validate(
        {
            "training_data": {
                "type": "CONCATENATION",
                "data_type": "DirectPreference",
                "datasets": [{"path": str(data)}],
            },
            "validation_data": {"type": "NONE"},
        }
    )
    train, _ = prepare_preference_datasets(conf, unpaired=False, cache_dir=root)
    (used,) = entry_names(root)
    age(root / used, 10 * HOUR)  # the oldest there is
    other = make_entry(root, "src-0c", 100, used_s_ago=60)

    eviction = evict_preprocessing_cache(root, 0)
    assert [e.folder for e in eviction.evicted] == [other]
    assert entry_names(root) == {used}
    assert len(train.to_list()) == 4  # its rows still read

    # a hit takes the lock too: a later process that only reads the entry holds it as well
    release_all()
    prepare_preference_datasets(conf, unpaired=False, cache_dir=root)
    assert evict_preprocessing_cache(root, 0).evicted == []
    assert (root / used / "preference.json").stat().st_mtime > time.time() - HOUR  # the hit is its last use
    release_all()
    assert [e.folder.name for e in evict_preprocessing_cache(root, 0).evicted] == [used]


def test_old_staging_leftovers_and_unused_lock_files_go_and_fresh_ones_stay(tmp_path: Path) -> None:
    root = tmp_path / "preprocessed"
    old = [
        make_entry(root, ".src-0123456789abcdef.tmp-k1ll3d", 10, used_s_ago=2 * HOUR),
        make_entry(root, ".packed-0123456789abcdef.tmp-xyz", 10, used_s_ago=2 * HOUR),
        make_entry(root, ".pref-0123456789abcdef.tmp-abc", 10, used_s_ago=2 * HOUR),
        make_entry(root, ".prompt-0123456789abcdef.tmp-abc", 10, used_s_ago=2 * HOUR),
        make_entry(root, "src-0d.evicting-4242", 10, used_s_ago=2 * HOUR),
    ]
    fresh = make_entry(root, ".src-fedcba9876543210.tmp-running", 10, used_s_ago=60)
    writing = make_entry(root, ".packed-fedcba9876543210.tmp-slow", 10, used_s_ago=2 * HOUR)
    (writing / "sub" / "shard.arrow").write_bytes(b"still being written")  # an old folder, a file written now
    entry = make_entry(root, "src-0e", 10, used_s_ago=2 * HOUR)
    (root / "src-0e.lock").touch()  # an entry's lock file stays
    (root / "src-1e.lock").touch()  # an entry never written (its run failed), no process holds it: it goes
    use_entry(root / "src-2e")  # this process is about to write that entry: its lock file stays

    eviction = evict_preprocessing_cache(root, 10**9)
    assert sorted(eviction.leftovers) == sorted(old)
    assert all(not path.exists() for path in old)
    assert fresh.is_dir()
    assert writing.is_dir()
    assert entry.is_dir()  # under the limit: an old entry is not a leftover
    assert eviction.evicted == []
    assert sorted(p.name for p in root.glob("*.lock")) == ["src-0e.lock", "src-2e.lock"]


def test_an_entry_lock_taken_before_the_entry_exists_protects_it_once_written(tmp_path: Path) -> None:
    root = tmp_path / "preprocessed"
    root.mkdir()
    use_entry(root / "src-0f")  # what the data functions do before they look
    make_entry(root, "src-0f", 10, used_s_ago=HOUR)
    assert lock_path(root / "src-0f").exists()
    assert evict_preprocessing_cache(root, 0).evicted == []


def test_a_second_sft_run_on_other_data_leaves_only_its_own_entries(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "engine-cache"
    root = cache / "preprocessed"
    env = {**os.environ, "FINETUNING_CACHE_DIR": str(cache), "FINETUNING_PREPROCESS_CACHE_MAX_GB": "1e-6"}
    steps: dict[str, Any] = {"max_steps": 2}

    # the first job in its own process: when it ends, so do its locks
    first = tmp_path / "first"
    first.mkdir()
    data = write_jsonl(tiny_chat_records(16, seed=1), tmp_path / "one.jsonl")
    (first / "config.yaml").write_text(
        yaml.safe_dump(sft_config(tiny_model_dir, data, first / "out", training_args=steps))
    )
    done = subprocess.run(
        [sys.executable, "-m", "finetuning.cli", "--num-preprocess-workers", "1", "sft", str(first / "config.yaml")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    first_entries = entry_names(root)
    assert {name.split("-")[0] for name in first_entries} == {"src", "packed"}

    monkeypatch.setenv("FINETUNING_CACHE_DIR", str(cache))
    monkeypatch.setenv("FINETUNING_PREPROCESS_CACHE_MAX_GB", "1e-6")
    data = write_jsonl(tiny_chat_records(16, seed=2), tmp_path / "two.jsonl")
    code, events = run_cli(
        tmp_path / "second", sft_config(tiny_model_dir, data, tmp_path / "second" / "out", training_args=steps)
    )
    assert code == 0
    assert events[-1]["status"] == "succeeded"
    second_entries = entry_names(root)
    assert {name.split("-")[0] for name in second_entries} == {"src", "packed"}
    assert not first_entries & second_entries  # the first run's entries are gone, the second's are there
    assert not [p for p in root.iterdir() if p.suffix == ".lock" and p.stem in first_entries]
    logged = [e["message"] for e in events if e["type"] == "log" and "preprocessing cache" in e.get("message", "")]
    assert len(logged) == 1
    assert "evicted 2" in logged[0]
