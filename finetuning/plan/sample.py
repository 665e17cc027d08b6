"""The data a plan reads: every row, or the first ``max_rows`` of each JSONL file with the counts extrapolated."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetuning.config.data import ConcatenationInput, DataConf, WeightedMixInput

logger = logging.getLogger(__name__)


# the bad-row limit the plan reads with: it reports every bad row instead of stopping at the first
READ_ALL = 1 << 62


@dataclass
class Sample:
    """The data the plan reads: ``data_conf`` (paths replaced by sampled copies where a file was cut), the original
    path of each copy, and the factor each file's counts are multiplied by."""

    data_conf: DataConf
    originals: dict[str, str]
    files: list[dict[str, Any]]

    @property
    def factor(self) -> float:
        """Rows in the files / rows read, over the training files (1.0 when nothing was cut)."""
        total = sum(f["rows_total"] for f in self.files if f["role"] == "training_data")
        read = sum(f["rows_read"] for f in self.files if f["role"] == "training_data")
        return total / read if read else 1.0

    @property
    def cut(self) -> bool:
        return any(f["rows_read"] < f["rows_total"] for f in self.files)

    def original(self, path: str) -> str:
        return self.originals.get(path, path)


class _SampledContext:
    def __init__(self, sample: Sample, folder: Path | None) -> None:
        self.sample, self.folder = sample, folder

    def __enter__(self) -> Sample:
        return self.sample

    def __exit__(self, *exc: object) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def sampled(
    data_conf: DataConf, max_rows: int | None, work: Path, originals: dict[str, str] | None = None
) -> _SampledContext:
    """Cut each JSONL file to its first ``max_rows`` records (blank lines kept, so line numbers stay the file's).
    ``originals``: the name to report for a local path (the bucket URI of a fetched copy)."""
    files: list[dict[str, Any]] = []
    originals = dict(originals or {})
    folder = None
    updates: dict[str, Any] = {}
    for role in ("training_data", "validation_data"):
        section = getattr(data_conf, role)
        if not isinstance(section, ConcatenationInput | WeightedMixInput):
            continue
        refs = []
        for index, ref in enumerate(section.datasets):
            if getattr(ref, "sampling_weight", 1.0) <= 0:
                refs.append(ref)
                continue
            path = str(ref.path)
            total, json_array = _count_rows(path)
            read, new_path = total, path
            if max_rows is not None and not json_array and total > max_rows:
                folder = folder or Path(tempfile.mkdtemp(prefix="sample-", dir=work))
                new_path = str(folder / f"{role}-{index}.jsonl")
                _copy_first_rows(path, new_path, max_rows)
                originals[new_path] = originals.get(path, path)
                read = max_rows
            files.append({"role": role, "path": originals.get(path, path), "rows_total": total, "rows_read": read})
            refs.append(ref.model_copy(update={"path": new_path}))
        updates[role] = section.model_copy(update={"datasets": refs})
    # every bad row is counted and listed instead of failing the read at the first
    conf = data_conf.model_copy(update={**updates, "max_bad_rows": READ_ALL})
    return _SampledContext(Sample(conf, originals, files), folder)


def _count_rows(path: str) -> tuple[int, bool]:
    """Non-blank lines of a JSONL file (its records, good or bad), counted in blocks; a JSON array: -1."""
    from finetuning.data.loading import is_json_array

    if is_json_array(path):
        return -1, True
    rows = 0
    with open(path, "rb") as f:
        for raw in f:
            if raw.strip():
                rows += 1
    return rows, False


def _copy_first_rows(source: str, target: str, rows: int) -> None:
    with open(source, "rb") as src, open(target, "wb") as out:
        for raw in src:
            out.write(raw)
            if raw.strip():
                rows -= 1
                if rows == 0:
                    return


def data_paths(data_conf: DataConf) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for role in ("training_data", "validation_data"):
        section = getattr(data_conf, role)
        if isinstance(section, ConcatenationInput | WeightedMixInput):
            for ref in section.datasets:
                if getattr(ref, "sampling_weight", 1.0) > 0 and str(ref.path) not in {p for _, p in found}:
                    found.append((role, str(ref.path)))
    return found


def items(path: str) -> Iterator[tuple[int, Any]]:
    from finetuning.data.loading import iter_items

    try:
        yield from iter_items(path)
    except Exception as exc:  # the loader already reported the file as a whole
        logger.debug("plan: %s: %s", path, exc)


def data_section(sample: Sample) -> dict[str, Any]:
    return {
        "files": sample.files,
        "sampled": sample.cut,
        "extrapolation_factor": round(sample.factor, 4),
        "note": (
            "counts, tokens and steps are extrapolated from the first rows of each file (max_rows); lengths are those "
            "of the rows read"
            if sample.cut
            else "every row was read"
        ),
    }
