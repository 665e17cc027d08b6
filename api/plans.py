"""Dry runs: ``POST /v1/jobs/{sft,dpo,grpo}?dry_run=true`` checks a submission as it would be checked (the same 422s),
then runs the engine's pre-flight plan (:mod:`finetuning.plan`) on it and answers with the report. Nothing is stored
and nothing is queued.

The plan runs ``finetuning plan`` in a child process: the API never imports torch or a tokenizer (docs/plan.md), the
child's memory goes when it exits, a plan that runs too long is killed (``plan_timeout_seconds``), and the event loop
only waits on a pipe. Each JSONL file is read up to ``plan_max_rows`` rows; beyond, the report extrapolates and says
so. The child reads the files at the paths the submission resolved to, so it needs the engine installed beside the
API (the slim API image has no engine: it answers 503 ``plan_unavailable``; run ``finetuning plan`` instead).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

from api import secret_service
from api.errors import ApiError
from api.resolve import parse_body, plan_submission, validate_config
from jobcore.models import JobKind, new_id
from jobcore.settings import ServiceSettings

logger = logging.getLogger(__name__)


def checked_config(
    session: Session, settings: ServiceSettings, project: str, kind: JobKind, body: bytes, content_type: str | None
) -> dict[str, Any]:
    """The config as a submission resolves it (validation, paths, model references: the same 422s), not stored."""
    data = parse_body(body, content_type)
    secret_service.take_env_secrets(data)  # not part of the engine's config
    config = validate_config(kind, data)
    return plan_submission(session, settings, project, kind, config, new_id()).config


async def run_plan(
    kind: JobKind, config: dict[str, Any], settings: ServiceSettings, *, processes: int, gpu: str | None
) -> dict[str, Any]:
    """``finetuning plan`` on ``config`` in a child process; its JSON report, or the ApiError it reported."""
    if importlib.util.find_spec("transformers") is None:
        raise ApiError(
            503,
            "plan_unavailable",
            "this API server has no engine installed to plan with; run `finetuning plan` where the engine is",
        )
    work = Path(tempfile.mkdtemp(prefix="finetuning-plan-"))
    try:
        config_file = work / "config.yaml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        command = [
            sys.executable,
            "-m",
            "finetuning.cli",
            "--logging-level",
            "WARNING",
            "--num-preprocess-workers",
            "1",
            "plan",
            kind.value,
            str(config_file),
            "--json",
            "--processes",
            str(processes),
            "--max-rows",
            str(settings.plan_max_rows),
            "--cache-dir",
            str(work / "cache"),
        ]
        if gpu:
            command += ["--gpu", gpu]
        child = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(work)
        )
        try:
            stdout, stderr = await asyncio.wait_for(child.communicate(), settings.plan_timeout_seconds)
        except TimeoutError:
            child.kill()
            await child.wait()
            raise ApiError(
                503,
                "plan_timeout",
                f"the plan took longer than {settings.plan_timeout_seconds:g} s (plan_timeout_seconds); run "
                "`finetuning plan` on the data instead",
            ) from None
        return _answer(child.returncode, stdout, stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _answer(returncode: int | None, stdout: bytes, stderr: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(stdout.decode() or "null")
    except ValueError:
        answer = None
    if returncode == 0 and isinstance(answer, dict):
        return answer
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        error = answer["error"]
        code = str(error.get("code") or "invalid_input")
        param = error.get("param")
        raise ApiError(422, code, str(error.get("message")), param if isinstance(param, str) else None)
    logger.error("finetuning plan failed (exit %s): %s", returncode, stderr.decode(errors="replace")[-4000:])
    raise ApiError(503, "plan_failed", f"the plan could not be made (exit {returncode}); see the API server's log")
