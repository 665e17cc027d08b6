"""Which checkpoint a run resumes from (``run_conf.resume_from_checkpoint``): the rule for the newest complete one is
:func:`finetuning.contract.last_complete_checkpoint`, shared with the service; and the checkpoints a run's output
holds, on disk or in a bucket, as the service lists them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from finetuning.contract import (
    UPLOAD_MARKER,
    checkpoint_step,
    is_complete_checkpoint,
    last_complete_checkpoint,
)
from finetuning.errors import FinetuningError
from finetuning.storage.uri import S3Uri, is_remote

logger = logging.getLogger(__name__)


def resolve_resume(value: bool | str, output_dir: Path) -> bool | str:
    """``auto``: the last complete checkpoint in ``output_dir`` if any, else a fresh start; ``true``: that
    checkpoint, which must exist; a path must exist."""
    if value == "auto":
        last = last_complete_checkpoint(output_dir)
        if last:
            logger.info("resuming from %s", last)
        return str(last) if last else False
    if value is True:
        last = last_complete_checkpoint(output_dir)
        if last is None:
            raise FinetuningError(
                f"resume_from_checkpoint is true but {output_dir} holds no checkpoint; use auto to start fresh "
                "when there is none",
                "invalid_config",
                "run_conf.resume_from_checkpoint",
            )
        return str(last)
    if isinstance(value, str) and not Path(value).is_dir():
        raise FinetuningError(f"no checkpoint folder at '{value}'", "invalid_config", "run_conf.resume_from_checkpoint")
    return value


@dataclass(frozen=True)
class CheckpointInfo:
    """One ``checkpoint-N`` of a run's output: where it is, whether it was saved (or uploaded) to the end, when, and
    how big it is (bytes of its files)."""

    step: int
    name: str
    location: str
    complete: bool
    created_at: datetime | None
    size_bytes: int


def list_checkpoints(output_dir: str) -> list[CheckpointInfo]:
    """The checkpoints in ``output_dir`` (a folder, or an ``s3://`` prefix: complete once its upload marker is
    there), by step. The same completeness rule as resuming uses."""
    if is_remote(output_dir):
        return _bucket_checkpoints(S3Uri.parse(output_dir))
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        step = checkpoint_step(path)
        if step is None or not path.is_dir():
            continue
        files = [p for p in path.rglob("*") if p.is_file()]
        state = path / "trainer_state.json"
        stamp = (state if state.is_file() else path).stat().st_mtime
        found.append(
            CheckpointInfo(
                step,
                path.name,
                str(path),
                is_complete_checkpoint(path),
                datetime.fromtimestamp(stamp, UTC),
                sum(p.stat().st_size for p in files),
            )
        )
    return sorted(found, key=lambda info: info.step)


def _bucket_checkpoints(remote: S3Uri) -> list[CheckpointInfo]:
    from finetuning.storage.client import list_objects

    sizes: dict[str, int] = {}
    stamps: dict[str, float] = {}
    complete: set[str] = set()
    for info in list_objects(remote):
        name, _, rest = S3Uri(remote.bucket, info.key).relative_to(remote).partition("/")
        if checkpoint_step(Path(name)) is None or not rest:
            continue
        if rest == UPLOAD_MARKER:
            complete.add(name)
        else:
            sizes[name] = sizes.get(name, 0) + info.size
        if info.modified is not None:
            stamps[name] = max(stamps.get(name, 0.0), info.modified)
    names = set(sizes) | complete
    found = [
        CheckpointInfo(
            step,
            name,
            str(remote / name),
            name in complete,
            datetime.fromtimestamp(stamps[name], UTC) if name in stamps else None,
            sizes.get(name, 0),
        )
        for name in names
        if (step := checkpoint_step(Path(name))) is not None
    ]
    return sorted(found, key=lambda info: info.step)
