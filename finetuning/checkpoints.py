"""Which checkpoint a run resumes from (``run_conf.resume_from_checkpoint``): the rule for the newest complete one is
:func:`finetuning.contract.last_complete_checkpoint`, shared with the service."""

from __future__ import annotations

import logging
from pathlib import Path

from finetuning.contract import last_complete_checkpoint
from finetuning.errors import FinetuningError

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
