"""What every command-line entry point shares: logging and events flags, the final status event (with an error code
people can act on) and the exit code (:mod:`finetuning.contract`)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from finetuning.config.base import ConfigError
from finetuning.contract import EXIT_BAD_INPUT, EXIT_OK, EXIT_STOPPED, OOM_REMEDY
from finetuning.data.errors import DataError
from finetuning.errors import FinetuningError
from finetuning.stopping import TrainingStopped, ignore_stop_signal, install_stop_handler

if TYPE_CHECKING:
    from finetuning.events import EventWriter

T = TypeVar("T")


logger = logging.getLogger("finetuning")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--logging-level", default="INFO")
    parser.add_argument(
        "--events-file",
        type=Path,
        default=None,
        help="Write machine-readable JSON-lines events here (default: $FINETUNING_EVENTS_FILE; none if unset)",
    )


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def is_user_error(exc: BaseException) -> bool:
    """Bad input gets its message, not a traceback; platform failures keep theirs."""
    if isinstance(exc, FinetuningError):
        return exc.code not in ("internal_error", "out_of_memory")
    return isinstance(exc, ConfigError | DataError | FileNotFoundError)


def run_with_events(args: argparse.Namespace, body: Callable[[Any], Mapping[str, Any]]) -> int:
    """Run ``body(events)`` (which emits ``run_started`` with its resolved config first) and end with a final
    ``status`` event.

    ``body`` returns the artifacts (name -> path or id) for the final status, or a dict with ``artifacts`` and
    ``metrics`` keys. User errors print one line and exit 2; a run stopped on request (``SIGUSR1``: checkpoint saved,
    final status ``cancelled`` naming it) exits 75; anything else keeps its traceback and exits 1.
    """
    from finetuning.events import EventWriter
    from finetuning.runtime import is_main_process
    from finetuning.settings import get_engine_settings

    settings = get_engine_settings()
    events = EventWriter(args.events_file or settings.events_file, enabled=is_main_process(), attempt=settings.attempt)
    try:
        outcome: dict[str, Any] = dict(run_reporting_status(events, lambda: body(events) or {}))
        if {"artifacts", "metrics"} & set(outcome):
            events.status("succeeded", artifacts=outcome.get("artifacts"), metrics=outcome.get("metrics"))
        else:
            events.status("succeeded", artifacts=outcome)
        return EXIT_OK
    except Exception as exc:
        if isinstance(exc, TrainingStopped):
            logger.warning("%s", exc)
            return EXIT_STOPPED
        if not is_user_error(exc):
            raise
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201 - the CLI's one line for the user
        return EXIT_BAD_INPUT
    finally:
        events.close()


def run_reporting_status(events: EventWriter, body: Callable[[], T]) -> T:
    """Run ``body`` and record the outcome as the final ``status`` event, with an error code people can act on."""
    import torch

    install_stop_handler()
    try:
        result = body()
    except TrainingStopped as exc:
        events.status(
            "cancelled",
            checkpoint=exc.checkpoint,
            metrics={"global_step": exc.step} if exc.step is not None else None,
        )
        raise
    except ConfigError as exc:
        issue = exc.issues[0] if exc.issues else None
        events.status("failed", error={"code": "invalid_config", "message": str(exc), "param": issue and issue.loc})
        raise
    except FinetuningError as exc:
        events.status("failed", error=exc.as_dict())
        raise
    except DataError as exc:
        events.status("failed", error={"code": "invalid_data", "message": str(exc), "param": None})
        raise
    except FileNotFoundError as exc:
        events.status("failed", error={"code": "data_not_found", "message": str(exc), "param": None})
        raise
    except torch.OutOfMemoryError as exc:
        events.status("failed", error={"code": "out_of_memory", "message": OOM_REMEDY, "param": None})
        raise FinetuningError(OOM_REMEDY, "out_of_memory") from exc
    except KeyboardInterrupt:
        events.status("cancelled")
        raise
    except Exception as exc:
        events.status("failed", error={"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"})
        raise
    finally:
        ignore_stop_signal()
    return result
