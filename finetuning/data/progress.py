"""How far a long data preparation stage is: log lines (the CLI shows them) and ``preprocessing`` events."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from finetuning.events import EventWriter

logger = logging.getLogger("finetuning.data")

CacheState = Literal["hit", "miss", "partial"]

# seconds between two progress reports of a stage
PROGRESS_INTERVAL_S = 5.0


class StageProgress:
    """Reports one stage (``tokenizing``, ``packing``): at most every ``interval_s`` seconds while it runs (rows done,
    rows/s, an ETA from ``rows_total`` when known), and once when it is done (with whether the cache served it)."""

    def __init__(
        self,
        stage: str,
        events: EventWriter | None = None,
        *,
        rows_total: int | None = None,
        interval_s: float | None = None,
    ) -> None:
        self.stage = stage
        self.events = events
        self.rows_total = rows_total
        self.interval_s = PROGRESS_INTERVAL_S if interval_s is None else interval_s
        self.start = time.monotonic()
        self._last = self.start

    def update(self, rows: int, *, bad_rows: int = 0, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval_s:
            return
        self._last = now
        elapsed = now - self.start
        rate = rows / elapsed if elapsed > 0 else 0.0
        eta = None
        if self.rows_total and rate > 0:
            eta = max(0.0, (self.rows_total - rows) / rate)
        of = f"/{self.rows_total} (~{min(100.0, 100 * rows / self.rows_total):.0f}%)" if self.rows_total else ""
        logger.info(
            "%s: %d%s rows, %.0f rows/s%s%s",
            self.stage,
            rows,
            of,
            rate,
            "" if eta is None else f", ETA {_duration(eta)}",
            f", {bad_rows} bad rows skipped" if bad_rows else "",
        )
        if self.events is not None:
            self.events.preprocessing(
                stage=self.stage,
                state="progress",
                rows=rows,
                rows_total=self.rows_total,
                elapsed_s=elapsed,
                eta_s=eta,
                bad_rows=bad_rows,
            )

    def done(self, rows: int, *, cache: CacheState | None, bad_rows: int = 0) -> float:
        """Report the end of the stage; returns its seconds."""
        elapsed = time.monotonic() - self.start
        logger.info(
            "%s done: %d rows in %.1f s%s%s",
            self.stage,
            rows,
            elapsed,
            "" if cache is None else f" (cache {cache})",
            f", {bad_rows} bad rows skipped" if bad_rows else "",
        )
        if self.events is not None:
            self.events.preprocessing(
                stage=self.stage,
                state="done",
                rows=rows,
                rows_total=rows,
                elapsed_s=elapsed,
                cache=cache,
                bad_rows=bad_rows,
            )
        return elapsed


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
