"""Machine-readable engine events: a versioned JSON-lines format (docs/events.md), its writer, reader and trainer hook.

Every line is one event: ``{"v": 1, "seq": 1, "time": "2026-11-02T10:00:00.123Z", "type": "phase", ...}``.
The engine appends them to ``FINETUNING_EVENTS_FILE`` beside its human log; the worker tails the file.

Importing this module does not import torch or transformers (the service imports it for the format):
:class:`EventsCallback` is created on first use.
"""

from __future__ import annotations

import functools
import json
import math
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TextIO, TypedDict

from finetuning.contract import EVENTS_VERSION, EventType, RunStatus
from finetuning.redaction import redact

if TYPE_CHECKING:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments


class Phase(StrEnum):
    DOWNLOADING = "downloading"
    LOADING_TOKENIZER = "loading_tokenizer"
    PREPROCESSING = "preprocessing"
    LOADING_MODEL = "loading_model"
    TRAINING = "training"
    EVALUATING = "evaluating"
    SAVING = "saving"
    UPLOADING = "uploading"
    MERGING = "merging"
    CONVERTING = "converting"
    GENERATING = "generating"
    DONE = "done"


LogLevel = Literal["info", "warning", "error"]
_LOG_LEVELS: frozenset[str] = frozenset(("info", "warning", "error"))


class EventError(TypedDict):
    """Why a run failed: ``code`` is a stable identifier, ``param`` the config path at fault (or None)."""

    code: str
    message: str
    param: str | None


class EventWriter:
    """Appends events to a JSON-lines file, one flushed line each; a no-op when ``path`` is None or not ``enabled``.

    Pass ``enabled=is_main_process`` in multi-process training: only one process may write a file. Appending to an
    existing file continues its ``seq`` (a retried run keeps one increasing sequence).
    """

    def __init__(self, path: Path | str | None, *, enabled: bool = True, attempt: int | None = None) -> None:
        self.path = Path(path) if path is not None and enabled else None
        self.attempt = attempt  # the service's run of the job (its claim), carried by every event when given
        self._lock = threading.Lock()  # seq and the line must go together even if a log handler thread writes
        self._seq = 0
        self._file: TextIO | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._seq = _last_seq_and_drop_torn_tail(self.path)
            self._file = self.path.open("a", encoding="utf-8")

    @property
    def enabled(self) -> bool:
        return self._file is not None

    def emit(self, event_type: EventType | str, **fields: Any) -> dict[str, Any] | None:
        """Write one event of ``event_type`` with ``fields``; return it as written (None when disabled)."""
        if self._file is None:
            return None
        with self._lock:
            self._seq += 1
            event = {"v": EVENTS_VERSION, "seq": self._seq, "time": _utc_now(), "type": str(event_type)}
            if self.attempt is not None:
                event["attempt"] = self.attempt
            # credentials never reach the file: the worker stores it, the API serves it
            event.update(redact(_json_safe(fields)))
            # allow_nan=False: NaN/Infinity are not JSON (Postgres JSONB and browsers reject them); _json_safe
            # already turned them into strings, so this only guards against a missed case.
            self._file.write(json.dumps(event, ensure_ascii=False, allow_nan=False) + "\n")
            self._file.flush()  # a reader tailing the file sees each event at once; no fsync (costly, not needed)
        return event

    def run_started(self, method: str, config: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """The engine started a ``method`` (sft, dpo, ...) run; ``config`` optionally echoes the resolved config."""
        return self.emit(EventType.RUN_STARTED, method=method, config=config)

    def phase(self, phase: Phase | str) -> dict[str, Any] | None:
        return self.emit(EventType.PHASE, phase=Phase(phase).value)

    def metrics(
        self,
        *,
        step: int,
        total_steps: int | None,
        epoch: float | None = None,
        loss: float | None = None,
        learning_rate: float | None = None,
        grad_norm: float | None = None,
        tokens_per_second: float | None = None,
        extra: Mapping[str, float] | None = None,
    ) -> dict[str, Any] | None:
        """Training metrics at a logging step; every named field is always present (null when unknown)."""
        return self.emit(
            EventType.METRICS,
            step=step,
            total_steps=total_steps,
            epoch=epoch,
            loss=loss,
            learning_rate=learning_rate,
            grad_norm=grad_norm,
            tokens_per_second=tokens_per_second,
            extra=dict(extra or {}),
        )

    def eval(self, *, step: int, epoch: float | None, metrics: Mapping[str, float]) -> dict[str, Any] | None:
        """Evaluation results; ``metrics`` keys without the trainer's ``eval_`` prefix (``loss``, ``runtime``...)."""
        return self.emit(EventType.EVAL, step=step, epoch=epoch, metrics=dict(metrics))

    def progress(
        self, *, step: int, total_steps: int | None, elapsed_s: float, eta_s: float | None
    ) -> dict[str, Any] | None:
        """How far training is; ``percent`` is computed from the steps (null when the total is unknown)."""
        percent = round(100.0 * step / total_steps, 2) if total_steps else None
        return self.emit(
            EventType.PROGRESS,
            step=step,
            total_steps=total_steps,
            percent=percent,
            elapsed_s=round(elapsed_s, 3),
            eta_s=None if eta_s is None else round(eta_s, 3),
        )

    def preprocessing(
        self,
        *,
        stage: str,
        state: Literal["progress", "done"],
        rows: int,
        rows_total: int | None,
        elapsed_s: float,
        eta_s: float | None = None,
        cache: Literal["hit", "miss", "partial"] | None = None,
        bad_rows: int = 0,
    ) -> dict[str, Any] | None:
        """How far a data preparation ``stage`` is (``tokenizing``, ``packing``); ``rows_per_second`` and ``percent``
        are computed here (null when unknown)."""
        percent = round(min(100.0, 100.0 * rows / rows_total), 2) if rows_total else None
        return self.emit(
            EventType.PREPROCESSING,
            stage=stage,
            state=state,
            rows=rows,
            rows_total=rows_total,
            percent=percent,
            rows_per_second=round(rows / elapsed_s, 1) if elapsed_s > 0 and rows else None,
            elapsed_s=round(elapsed_s, 3),
            eta_s=None if eta_s is None else round(eta_s, 3),
            cache=cache,
            bad_rows=bad_rows,
        )

    def checkpoint(self, *, step: int, path: Path | str) -> dict[str, Any] | None:
        return self.emit(EventType.CHECKPOINT, step=step, path=str(path))

    def samples(self, *, step: int, samples: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
        """A few completions sampled at a logging step (GRPO), each ``{prompt, completion, rewards: {grader:
        reward}, reward}`` (``reward``: the weighted total the run learns from)."""
        return self.emit(EventType.SAMPLES, step=step, samples=[dict(sample) for sample in samples])

    def manifest(self, **fields: Any) -> dict[str, Any] | None:
        """The run's reproducibility manifest (docs/manifest.md), built by :func:`finetuning.manifest.emit_manifest`:
        ``method``, ``job_id``, ``config``, ``pins``, ``seeds``, ``resolved``, ``training_arguments``, ``inputs``,
        ``versions``, ``machine``, ``determinism``."""
        return self.emit(EventType.MANIFEST, **fields)

    def log(self, level: LogLevel, message: str) -> dict[str, Any] | None:
        """A message worth showing the user beside the metrics (e.g. a warning about the data)."""
        if level not in _LOG_LEVELS:
            raise ValueError(f"log level must be one of {sorted(_LOG_LEVELS)}, got {level!r}")
        return self.emit(EventType.LOG, level=level, message=message)

    def status(
        self,
        status: RunStatus | str,
        *,
        error: EventError | Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        artifacts: Mapping[str, str | Path] | None = None,  # paths are written as text
        checkpoint: Path | str | None = None,
    ) -> dict[str, Any] | None:
        """The run's final event: its status, the error when it failed, final metrics and artifacts (model path...);
        ``checkpoint``: the folder a run stopped on request saved (``cancelled``), to resume from."""
        status = RunStatus(status)
        if status is RunStatus.FAILED and error is None:
            raise ValueError("a failed status needs an error {code, message, param} saying what went wrong")
        return self.emit(
            EventType.STATUS,
            status=status.value,
            error=None if error is None else _error_fields(error),
            metrics=dict(metrics or {}),
            artifacts={key: str(value) for key, value in (artifacts or {}).items()},
            checkpoint=None if checkpoint is None else str(checkpoint),
        )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _error_fields(error: Mapping[str, Any]) -> EventError:
    """Exactly ``{code, message, param}``: readers rely on the shape, whatever mapping the caller built."""
    missing = [key for key in ("code", "message") if not error.get(key)]
    if missing:
        raise ValueError(f"an error needs a non-empty {' and '.join(missing)}, got {dict(error)!r}")
    param = error.get("param")
    return {
        "code": str(error["code"]),
        "message": str(error["message"]),
        "param": None if param is None else str(param),
    }


def read_events(path: Path | str) -> list[dict[str, Any]]:
    """All complete events in a file, in order; an unterminated last line (still being written) is left out.

    Raises:
        ValueError: a complete line is not a JSON object, naming the file and line number.
    """
    events = []
    with Path(path).open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith("\n"):
                break
            try:
                event = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not a JSON event: {exc}") from None
            if not isinstance(event, dict):
                raise ValueError(f"{path}:{number}: an event must be a JSON object, got {type(event).__name__}")
            events.append(event)
    return events


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_safe(value: Any) -> Any:
    """Make ``value`` strict JSON: non-finite floats become "NaN"/"Infinity"/"-Infinity", tuples lists, paths str."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _last_seq_and_drop_torn_tail(path: Path) -> int:
    """The last ``seq`` in an existing events file (0 if none); a torn last line from a killed writer is cut off."""
    if not path.exists():
        return 0
    with path.open("rb+") as f:
        data = f.read()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            f.truncate(complete)  # never a complete event: each is written with its newline in one write
    for line in reversed(data[:complete].splitlines()):
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and isinstance(event.get("seq"), int):
            return int(event["seq"])
    return 0


def _as_number(value: Any) -> float | None:
    """A log value as a number (None if it is not one); bools are not metrics, ints stay ints."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    # Tensors from custom trainers; the stock Trainer has already called .item(), as MLflowCallback would here.
    if hasattr(value, "item") and getattr(value, "numel", lambda: 0)() == 1:
        return float(value.item())
    return None


_METRICS_FIELDS = ("loss", "learning_rate", "grad_norm", "epoch")


class _TrainerEventHooks:
    """Trainer hooks as events: ``phase`` training at train begin, ``metrics`` + ``progress`` per log, ``eval``,
    ``checkpoint`` per save. The final ``status`` is the caller's: it knows how the run ended.

    :class:`EventsCallback` adds transformers' ``TrainerCallback`` on first use, so this module imports without torch.
    """

    def __init__(self, writer: EventWriter) -> None:
        self.writer = writer
        self._start_time = 0.0
        self._start_step = 0
        self._last_time = 0.0
        self._last_tokens = 0
        self._last_progress_step = -1
        self._step_end = 0.0
        self._paused = 0.0  # seconds spent evaluating or saving since the previous log

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        # global_step is already the resumed step here, so the ETA counts only this session's steps.
        self._start_time = self._last_time = self._step_end = time.monotonic()
        self._start_step = state.global_step
        self._last_tokens = state.num_input_tokens_seen
        self._last_progress_step = -1
        self._paused = 0.0
        if state.is_world_process_zero:
            self.writer.phase(Phase.TRAINING)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        numbers = {key: number for key, value in logs.items() if (number := _as_number(value)) is not None}
        if any(key.startswith("eval_") for key in numbers):
            metrics = {key.removeprefix("eval_"): value for key, value in numbers.items() if key.startswith("eval_")}
            self.writer.eval(step=state.global_step, epoch=numbers.get("epoch"), metrics=metrics)
            return
        total_steps = state.max_steps or None
        now = time.monotonic()
        self.writer.metrics(
            step=state.global_step,
            total_steps=total_steps,
            epoch=numbers.get("epoch"),
            loss=numbers.get("loss"),
            learning_rate=numbers.get("learning_rate"),
            grad_norm=numbers.get("grad_norm"),
            tokens_per_second=self._tokens_per_second(state, now),
            extra={key: value for key, value in numbers.items() if key not in _METRICS_FIELDS},
        )
        # The end-of-training summary log comes at the last step again; one progress event per step is enough.
        if state.global_step > self._last_progress_step:
            self._last_progress_step = state.global_step
            self._progress(state, total_steps, now)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        # Evaluation and saving run after on_step_end and before the next step; timing them keeps tokens/s a
        # training speed (a checkpoint of a large model takes many steps' time).
        self._step_end = time.monotonic()

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._pause_until_now()

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._pause_until_now()
        if state.is_world_process_zero:
            # The Trainer's own naming (PREFIX_CHECKPOINT_DIR); absolute, because the reader's cwd may differ.
            path = Path(args.output_dir or ".").absolute() / f"checkpoint-{state.global_step}"
            self.writer.checkpoint(step=state.global_step, path=path)

    def _tokens_per_second(self, state: TrainerState, now: float) -> float | None:
        # The Trainer counts tokens only with include_num_input_tokens_seen ("non_padding": real tokens), else the
        # count stays 0 and so does the delta. The rate is over the window since the previous log: current speed.
        tokens, elapsed = state.num_input_tokens_seen - self._last_tokens, now - self._last_time - self._paused
        self._last_tokens, self._last_time, self._paused = state.num_input_tokens_seen, now, 0.0
        return tokens / elapsed if elapsed > 0 and tokens > 0 else None

    def _pause_until_now(self) -> None:
        now = time.monotonic()
        self._paused += now - self._step_end
        self._step_end = now  # an evaluation followed by a save must not count the evaluation twice

    def _progress(self, state: TrainerState, total_steps: int | None, now: float) -> None:
        elapsed = now - self._start_time
        done = state.global_step - self._start_step
        eta = None
        if total_steps and done > 0:
            eta = max(0.0, elapsed / done * (total_steps - state.global_step))
        self.writer.progress(step=state.global_step, total_steps=total_steps, elapsed_s=elapsed, eta_s=eta)


if TYPE_CHECKING:

    class EventsCallback(_TrainerEventHooks, TrainerCallback): ...

else:

    def __getattr__(name: str) -> Any:
        # PEP 562: build the TrainerCallback subclass on first use, so importing the format doesn't import torch.
        if name == "EventsCallback":
            return _events_callback_class()
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _events_callback_class() -> type[Any]:
    from transformers import TrainerCallback

    class EventsCallback(_TrainerEventHooks, TrainerCallback):
        __doc__ = _TrainerEventHooks.__doc__

    EventsCallback.__module__ = __name__
    EventsCallback.__qualname__ = "EventsCallback"
    return EventsCallback
