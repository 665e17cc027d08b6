"""Showing jobs to people: the live progress (one rewritten line on a terminal, one line per update elsewhere), the
summary of a finished job, tables and error messages."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from ftjob.client import TERMINAL_STATUSES, Event, ServiceError

CLEAR_LINE = "\r\x1b[K"
ENVELOPE = frozenset({"v", "seq", "time", "type"})  # an engine event's envelope: shown by --json, not in lines
BAR_WIDTH = 20


# -- small formatters


def fmt_duration(seconds: float | None) -> str:
    """``4.2s``, ``42s``, ``12m05s``, ``3h04m``; ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:  # None, NaN, or a clock that went backwards
        return "?"
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fmt_number(value: Any, spec: str = ".4g") -> str:
    """A metric value: numbers formatted with ``spec``; strings as sent (``"NaN"`` for a diverging loss)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return format(value, spec)


def fmt_percent(value: float) -> str:
    """``0.3%`` below ten percent (a long run moves slowly), ``42%`` above."""
    return f"{value:.1f}%" if 0 < value < 10 else f"{value:.0f}%"


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def fmt_time(value: Any) -> str:
    """An ISO timestamp of the service as local time, ``2026-11-02 11:00:03``; ``-`` when absent."""
    moment = parse_time(value)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def job_duration(job: dict[str, Any]) -> float | None:
    start, end = parse_time(job.get("started_at")), parse_time(job.get("finished_at"))
    return (end - start).total_seconds() if start and end else None


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, the last one not padded."""
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [cell.ljust(width) for cell, width in zip(cells[:-1], widths[:-1], strict=True)]
        return "  ".join([*padded, cells[-1]]).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def error_lines(error: ServiceError) -> list[str]:
    """The service's error envelope for people: the code and message, then each issue as ``param: message``."""
    where = f"[{error.code}, HTTP {error.status_code}]"
    if error.details:
        count = len(error.details)
        lines = [f"error {where}: {count} problem{'s' if count > 1 else ''}"]
        lines += [f"  {issue.param or '(request)'}: {issue.message}" for issue in error.details]
        return lines
    lines = [f"error {where}: {error.message}"]
    if error.param and error.param not in error.message and error.status_code != 401:
        lines.append(f"  at: {error.param}")
    if error.status_code == 401:
        lines.append("  set FINETUNING_TOKEN (or --token) to a valid API token")
    return lines


def job_error_text(error: dict[str, Any] | None) -> str:
    """A failed job's ``{code, message, param}`` in one line."""
    if not error:
        return "no error recorded"
    text = f"{error.get('code', 'error')}: {error.get('message', '')}"
    param = error.get("param")
    return f"{text} (at {param})" if param and str(param) not in text else text


def log_line(data: dict[str, Any]) -> str:
    """One line of text for a ``log`` event: an output line, or an engine message with its level."""
    if "line" in data:
        return str(data["line"]).rstrip("\n")
    if "message" in data:
        level = data.get("level")
        return f"[{level}] {data['message']}" if level else str(data["message"])
    return json.dumps(data)


# -- live progress


@dataclass
class Progress:
    """What the events of a job said so far: status, phase, step, loss, ETA."""

    status: str | None = None
    phase: str | None = None
    step: int | None = None
    total_steps: int | None = None
    percent: float | None = None
    eta_s: float | None = None
    loss: Any = None
    learning_rate: Any = None
    epoch: float | None = None

    def update(self, event: Event) -> list[str]:
        """Take in ``event``; return the lines worth keeping on screen (status and phase changes, evaluations,
        checkpoints, engine messages), not the progress itself."""
        data = event.data
        notes: list[str] = []
        if event.type == "job":
            status = data.get("status")
            if isinstance(status, str) and status != self.status:
                self.status = status
                if status not in TERMINAL_STATUSES:
                    detail = f" (attempt {data['attempt']})" if data.get("attempt") else ""
                    notes.append(f"status: {status}{detail}")
        elif event.type == "phase" and isinstance(data.get("phase"), str):
            if data["phase"] != self.phase:
                self.phase = data["phase"]
                notes.append(f"phase: {self.phase}")
        elif event.type == "metrics":
            for name in ("loss", "learning_rate", "epoch"):
                if data.get(name) is not None:
                    setattr(self, name, data[name])
            self._steps(data)
        elif event.type == "progress":
            self._steps(data)
            self.percent = data.get("percent", self.percent)
            self.eta_s = data.get("eta_s")
        elif event.type == "eval":
            metrics = data.get("metrics") or {}
            shown = ", ".join(f"{k} {fmt_number(v)}" for k, v in metrics.items() if k in ("loss", "accuracy"))
            notes.append(f"eval at step {data.get('step')}: {shown or 'done'}")
        elif event.type == "checkpoint":
            notes.append(f"checkpoint at step {data.get('step')}: {data.get('path')}")
        elif event.type == "log" and "message" in data:
            notes.append(log_line(data))  # an engine message (a data warning...), not an output line
        return notes

    def _steps(self, data: dict[str, Any]) -> None:
        if isinstance(data.get("step"), int):
            self.step = data["step"]
        if data.get("total_steps") is not None:
            self.total_steps = data["total_steps"]

    def percent_done(self) -> float | None:
        """From the steps when both are known (a ``metrics`` event comes before its ``progress``), else as sent."""
        if isinstance(self.step, int) and isinstance(self.total_steps, int) and self.total_steps > 0:
            return 100.0 * self.step / self.total_steps
        return self.percent if isinstance(self.percent, int | float) else None

    def text(self) -> str:
        """``training step 12/30 (40%) loss 1.234 lr 1.00e-02 epoch 1.5 eta 7.0s``"""
        parts = [self.phase or self.status or "waiting"]
        if self.step is not None:
            total = f"/{self.total_steps}" if self.total_steps else ""
            done = self.percent_done()
            percent = f" ({fmt_percent(done)})" if done is not None else ""
            parts.append(f"step {self.step}{total}{percent}")
        if self.loss is not None:
            parts.append(f"loss {fmt_number(self.loss)}")
        if self.learning_rate is not None:
            parts.append(f"lr {fmt_number(self.learning_rate, '.2e')}")
        if self.epoch is not None:
            parts.append(f"epoch {fmt_number(self.epoch, '.2f')}")
        if isinstance(self.eta_s, int | float) and self.eta_s > 0 and self.status not in TERMINAL_STATUSES:
            parts.append(f"eta {fmt_duration(self.eta_s)}")
        return "  ".join(parts)


class Renderer:
    """Shows a job's events as they come. This base shows nothing (``--wait`` without ``--follow``)."""

    def __init__(self, out: TextIO, *, logs: bool = False) -> None:
        self.out = out
        self.logs = logs
        self.progress = Progress()

    def event(self, event: Event) -> None:
        self.progress.update(event)

    def reconnecting(self, attempt: int, problem: str) -> None:
        """The stream dropped; it is being resumed."""

    def finish(self) -> None:
        """The stream is over: leave the screen clean for the summary."""

    def write(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()


class LineRenderer(Renderer):
    """One line per update, no carriage returns: readable in CI logs and when piped."""

    def event(self, event: Event) -> None:
        for note in self.progress.update(event):
            self.write(note)
        if event.type == "progress":
            self.write(self.progress.text())
        elif event.type == "log" and self.logs and "line" in event.data:
            self.write(f"| {log_line(event.data)}")

    def reconnecting(self, attempt: int, problem: str) -> None:
        self.write(f"connection lost ({problem}); resuming (try {attempt})")


class TtyRenderer(Renderer):
    """A progress bar on one line rewritten in place, with notes (phases, evaluations...) printed above it."""

    def __init__(self, out: TextIO, *, logs: bool = False) -> None:
        super().__init__(out, logs=logs)
        self._shown = ""

    def event(self, event: Event) -> None:
        notes = self.progress.update(event)
        if event.type == "log" and self.logs and "line" in event.data:
            notes.append(f"| {log_line(event.data)}")
        for note in notes:
            self._clear()
            self.write(note)
        self._draw()

    def reconnecting(self, attempt: int, problem: str) -> None:
        self._clear()
        self.write(f"connection lost ({problem}); resuming (try {attempt})")
        self._draw()

    def finish(self) -> None:
        self._clear()

    def status_line(self) -> str:
        percent = self.progress.percent_done()
        if percent is not None:
            filled = max(0, min(BAR_WIDTH, int(BAR_WIDTH * percent / 100)))
            bar = "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "] "
        else:
            bar = ""
        return bar + self.progress.text()

    def _draw(self) -> None:
        width = shutil.get_terminal_size((100, 24)).columns
        line = self.status_line()[: max(10, width - 1)]
        if line != self._shown or not self._shown:
            self.out.write(CLEAR_LINE + line)
            self.out.flush()
            self._shown = line

    def _clear(self) -> None:
        if self._shown:
            self.out.write(CLEAR_LINE)
            self._shown = ""


class JsonRenderer(Renderer):
    """Each event as one JSON line, ``{"id", "type", "data"}``: for programs."""

    def event(self, event: Event) -> None:
        super().event(event)
        self.write(json.dumps(event.as_dict(), ensure_ascii=False))


class LogRenderer(Renderer):
    """The job's log lines (output lines and engine messages), as ``ftjob logs`` prints them."""

    def event(self, event: Event) -> None:
        super().event(event)
        if event.type == "log":
            self.write(log_line(event.data))


def summary(job: dict[str, Any], progress: Progress | None = None) -> str:
    """One line about a finished job: status, duration, final loss and artifacts."""
    parts = [f"job {job.get('id')} {job.get('status')}"]
    duration = job_duration(job)
    if duration is not None:
        parts[0] += f" in {fmt_duration(duration)}"
    metrics = job.get("metrics") or {}
    loss = progress.loss if progress is not None and progress.loss is not None else metrics.get("train_loss")
    if loss is not None:
        parts.append(f"final loss {fmt_number(loss)}")
    artifacts = job.get("artifacts") or {}
    if artifacts:
        parts.append("artifacts: " + ", ".join(f"{name}={value}" for name, value in artifacts.items()))
    if job.get("mlflow_run_id") and "mlflow_run_id" not in artifacts:
        parts.append(f"mlflow run {job['mlflow_run_id']}")
    return "; ".join(parts)


def job_details(job: dict[str, Any]) -> str:
    """``ftjob show``: the job as ``key: value`` lines for people (``--json`` has everything)."""
    progress = job.get("progress") or {}
    rows: list[tuple[str, str]] = [
        ("id", str(job.get("id"))),
        ("kind", str(job.get("kind"))),
        ("name", job.get("name") or "-"),
        ("status", str(job.get("status"))),
        ("phase", job.get("phase") or "-"),
    ]
    if progress.get("step") is not None:
        total = f"/{progress['total_steps']}" if progress.get("total_steps") else ""
        percent = f" ({fmt_percent(progress['percent'])})" if isinstance(progress.get("percent"), int | float) else ""
        eta_s = progress.get("eta_s")
        running = job.get("status") not in TERMINAL_STATUSES
        eta = f", eta {fmt_duration(eta_s)}" if isinstance(eta_s, int | float) and eta_s > 0 and running else ""
        rows.append(("progress", f"step {progress['step']}{total}{percent}{eta}"))
    labels = job.get("labels") or {}
    rows += [
        ("labels", ", ".join(f"{k}={v}" for k, v in labels.items()) or "-"),
        ("queue", str(job.get("queue"))),
        ("attempt", str(job.get("attempt"))),
        ("created", fmt_time(job.get("created_at"))),
        ("started", fmt_time(job.get("started_at"))),
        ("finished", fmt_time(job.get("finished_at"))),
    ]
    duration = job_duration(job)
    if duration is not None:
        rows.append(("duration", fmt_duration(duration)))
    if job.get("error"):
        rows.append(("error", job_error_text(job["error"])))
    for run in job.get("attempts") or []:
        resumed = run.get("resumed_from")
        parts = [str(run.get("outcome")), f"to step {run['last_step']}" if run.get("last_step") is not None else ""]
        if resumed:
            parts.append(f"resumed step {resumed.get('step')}")
        if run.get("lost_steps"):
            parts.append(f"lost {run['lost_steps']} steps ({fmt_duration(run.get('lost_seconds'))})")
        rows.append((f"run {run.get('attempt')}", ", ".join(part for part in parts if part)))
    lost = job.get("lost_work") or {}
    if lost.get("steps"):
        rows.append(("lost work", f"{lost['steps']} steps done twice, {fmt_duration(lost.get('seconds'))}"))
    for name, source in (job.get("inputs") or {}).items():
        rows.append((f"input {name}", f"job:{source.get('job_id')}/{source.get('artifact')} -> {source.get('path')}"))
    for name, value in (job.get("artifacts") or {}).items():
        rows.append((f"artifact {name}", str(value)))
    for name, value in (job.get("metrics") or {}).items():
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            rows.append((f"metric {name}", fmt_number(value)))
    if job.get("mlflow_run_id"):
        rows.append(("mlflow run", str(job["mlflow_run_id"])))
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key + ':':<{width + 1}} {value}" for key, value in rows)


def jobs_table(jobs: Sequence[dict[str, Any]]) -> str:
    """``ftjob list``: one row per job."""
    rows = []
    for job in jobs:
        progress = job.get("progress") or {}
        percent = progress.get("percent")
        shown = fmt_percent(percent) if isinstance(percent, int | float) else "-"
        labels = ",".join(f"{k}={v}" for k, v in (job.get("labels") or {}).items())
        name = job.get("name") or "-"
        rows.append(
            [
                str(job.get("id")),
                str(job.get("kind")),
                str(job.get("status")),
                job.get("phase") or "-",
                shown,
                fmt_time(job.get("created_at")),
                name if len(name) <= 32 else name[:31] + "~",
                labels or "-",
            ]
        )
    return table(["ID", "KIND", "STATUS", "PHASE", "PROGRESS", "CREATED", "NAME", "LABELS"], rows)
