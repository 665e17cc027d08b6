"""Preference (DPO/KTO) data preparation: peak memory of the list-based path against the Arrow one, in one run.

    python bench/preference_data.py                      # 20k and 200k pairs, both paths
    python bench/preference_data.py --rows 1000000 --paths arrow --output /tmp/pref.md

For each size a DirectPreference JSONL file is generated (a prompt of 5-40 words, chosen and rejected answers of
10-120 words each) and, each in a process of its own, ``prepare_preference_datasets`` builds the training rows with a
5% auto split held out (``unpaired: false``, DPO):

- ``arrow``: the engine's path (:func:`finetuning.data.preference.prepare_preference_datasets`): each file validated
  and converted a batch at a time into a memory-mapped Arrow file (in a temporary folder, no cache);
- ``list``: the path it replaced, kept here as the reference: every record loaded as Python dicts
  (``build_training_records``), converted (``to_trl_rows``) and given to ``Dataset.from_list``.

Measured in the child: wall seconds of the call, and the process's peak resident memory (``ru_maxrss``) after the
imports and at the end. Prints a markdown table (``--output`` also writes it to a file). Run by hand; never asserted in
CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SEED = 13
WORDS = (
    "the a cat dog model river city answer question water book door window garden song problem apple number time "
    "sees likes finds builds reads writes follows helps carries watches learns opens closes quickly slowly today"
).split()
SPLIT_RATIO = 0.05


def generate(path: Path, rows: int) -> None:
    if path.exists():
        return
    rng = random.Random(SEED)

    def words(low: int, high: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))

    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for index in range(rows):
            record = {
                "id": f"p{index}",
                "prompt_messages": [{"role": "user", "content": words(5, 40)}],
                "chosen_messages": [{"role": "assistant", "content": words(10, 120)}],
                "rejected_messages": [{"role": "assistant", "content": words(10, 120)}],
            }
            f.write(json.dumps(record) + "\n")
    tmp.rename(path)


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def child(path: str, data: str) -> None:
    """One measurement, in this (fresh) process: prints a JSON line."""
    sys.path.insert(0, str(ROOT))
    from datasets import Dataset

    from finetuning.config.data import DataConf
    from finetuning.data.loading import BadRows
    from finetuning.data.mixing import build_training_records
    from finetuning.data.preference import prepare_preference_datasets, to_trl_rows
    from finetuning.data.preprocess import split_validation

    conf = DataConf.model_validate(
        {
            "training_data": {"type": "CONCATENATION", "data_type": "DirectPreference", "datasets": [{"path": data}]},
            "validation_data": {"type": "AUTO_SPLIT", "ratio": SPLIT_RATIO, "data_type": "DirectPreference"},
        }
    )
    imports = _peak_rss()
    start = time.perf_counter()
    if path == "arrow":
        train, validation = prepare_preference_datasets(conf, unpaired=False)
    else:
        records = build_training_records(conf.training_data, BadRows(conf.max_bad_rows))
        index = Dataset.from_dict({"index": list(range(len(records)))})
        train_part, eval_part = split_validation(index, conf.validation_data)  # type: ignore[arg-type]
        train = Dataset.from_list(
            to_trl_rows([records[i] for i in train_part["index"]], conf.training_data.data_type, unpaired=False)
        )
        validation = Dataset.from_list(
            to_trl_rows([records[i] for i in eval_part["index"]], conf.training_data.data_type, unpaired=False)
        )
    seconds = time.perf_counter() - start
    assert validation is not None
    print(json.dumps({"rows": len(train) + len(validation), "s": seconds, "imports": imports, "peak": _peak_rss()}))


def measure(path: str, data: Path) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, __file__, "--child", path, str(data)], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def machine() -> str:
    with open("/proc/meminfo") as f:
        memory = int(f.readline().split()[1]) / 2**20
    return f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB, {platform.system()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="20000,200000", help="comma-separated pair counts")
    parser.add_argument("--paths", default="list,arrow", help="list and/or arrow")
    parser.add_argument("--workdir", type=Path, help="keep the generated data here (default: a temporary folder)")
    parser.add_argument("--output", type=Path, help="also write the table here (markdown)")
    parser.add_argument("--child", nargs=2, metavar=("PATH", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-preference-"))
    work.mkdir(parents=True, exist_ok=True)
    lines = [
        "| pairs | path | file MB | seconds | RSS after imports (GB) | peak RSS (GB) | peak - imports (GB) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    peaks: dict[tuple[str, int], int] = {}
    failed = False
    try:
        for rows in [int(n) for n in args.rows.split(",")]:
            data = work / f"pairs-{rows}.jsonl"
            generate(data, rows)
            size = data.stat().st_size / 1e6
            for path in args.paths.split(","):
                result = measure(path, data)
                if "error" in result:
                    failed = True
                    lines.append(f"| {rows:,} | {path} | {size:.0f} | failed: {result['error']} | | | |")
                else:
                    peaks[(path, rows)] = result["peak"]
                    lines.append(
                        f"| {rows:,} | {path} | {size:.0f} | {result['s']:.1f} | {result['imports'] / 1e9:.2f} "
                        f"| {result['peak'] / 1e9:.2f} | {(result['peak'] - result['imports']) / 1e9:.2f} |"
                    )
                print(lines[-1], flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    sizes = sorted({rows for _, rows in peaks})
    notes = []
    for path in args.paths.split(","):
        if len(sizes) > 1 and (path, sizes[0]) in peaks and (path, sizes[-1]) in peaks:
            ratio = peaks[(path, sizes[-1])] / peaks[(path, sizes[0])]
            notes.append(f"- {path}: peak RSS at {sizes[-1]:,} pairs / at {sizes[0]:,}: {ratio:.2f}x (target <= 1.5x)")
    report = "\n".join(
        [
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}; `python bench/preference_data.py --rows "
            f"{args.rows}`; DPO rows, auto split {SPLIT_RATIO:.0%}.",
            "",
            *lines,
            "",
            *notes,
            "",
        ]
    )
    print("\n" + report)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
