"""A training run's bucket output: each checkpoint is uploaded in the background as soon as the trainer saves it
(hard-linked first, so the trainer may rotate its local copy meanwhile), old ones are pruned in the bucket as the
trainer prunes them locally (``save_total_limit``), and what is left (the final model, a grown base) goes up at the
end. Training never waits for an upload; the run waits once, at its end, for all of them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetuning.checkpoints import list_checkpoints
from finetuning.contract import UPLOAD_MARKER, checkpoint_step
from finetuning.settings import get_engine_settings
from finetuning.storage.client import client, delete_prefix, storage_error
from finetuning.storage.places import OutputPlace, upload_reporter
from finetuning.storage.uploader import Uploader
from finetuning.storage.uri import S3Uri

if TYPE_CHECKING:
    from transformers import Trainer

    from finetuning.events import EventWriter

logger = logging.getLogger(__name__)


class Publisher:
    """Does nothing for a local output or on a rank other than the main process."""

    def __init__(self, place: OutputPlace, uploader: Uploader | None, events: EventWriter, keep: int | None) -> None:
        self.place = place
        self.uploader = uploader
        self.events = events
        self.keep = keep  # checkpoints kept in the bucket (the trainer's save_total_limit), None: all
        self.submitted: set[str] = set()

    @classmethod
    def start(cls, place: OutputPlace, trainer: Trainer, events: EventWriter, *, main_process: bool) -> Publisher:
        if place.remote is None or not main_process:
            return cls(place, None, events, None)
        settings = get_engine_settings()
        snapshots = place.local.with_name(place.local.name + ".uploading")
        uploader = Uploader(
            retry_seconds=settings.upload_retry_seconds, report=upload_reporter(events), snapshots=snapshots
        )
        args = trainer.args
        keep = args.save_total_limit if args.save_total_limit and not args.load_best_model_at_end else None
        publisher = cls(place, uploader, events, keep)
        trainer.add_callback(_callback_class()(publisher))
        return publisher

    def saved(self, step: int) -> None:
        """The trainer saved ``checkpoint-<step>``: upload it (its marker last), then prune the bucket."""
        if self.uploader is None:
            return
        folder = self.place.local / f"checkpoint-{step}"
        if not folder.is_dir() or folder.name in self.submitted:
            return
        self.submitted.add(folder.name)
        self.uploader.submit(folder, self.place.remote_for(folder), marker=True, snapshot=True, on_done=self.prune)

    def check(self) -> None:
        """Fail the run once an upload was given up on (its retries exhausted): its checkpoints would be lost."""
        if self.uploader is not None and self.uploader.failed is not None:
            raise self.uploader.failed

    def finish(self, *, final: Path | None) -> None:
        """Upload what is left in ``final`` (the output folder; None: only the checkpoints already submitted) and
        wait for every upload; a :class:`StorageError` when one was given up on."""
        if self.uploader is None:
            return
        if final is not None:
            for item in sorted(final.iterdir()):
                if checkpoint_step(item) is not None and item.name in self.submitted:
                    continue
                self.uploader.submit(item, self.place.remote_for(item), marker=item.is_dir())
        self.events.phase("uploading")
        self.uploader.wait()

    def close(self) -> None:
        if self.uploader is not None:
            self.uploader.close()

    def prune(self) -> None:
        """Delete uploaded checkpoints beyond the newest ``keep`` in the bucket (marker first, so a checkpoint
        being deleted is never taken for a complete one)."""
        if self.keep is None or self.place.remote is None:
            return
        remote = self.place.remote
        complete = [c for c in list_checkpoints(str(remote)) if c.complete]  # by step: the newest last
        for checkpoint in complete[: max(len(complete) - self.keep, 0)]:
            _delete_checkpoint(remote / checkpoint.name)
            logger.info("pruned %s from the bucket (save_total_limit: %d)", checkpoint.location, self.keep)


def _delete_checkpoint(uri: S3Uri) -> None:
    marker = uri / UPLOAD_MARKER
    try:
        client().delete_object(Bucket=marker.bucket, Key=marker.key)
    except Exception as exc:
        raise storage_error(exc, marker) from None
    delete_prefix(uri)


def _callback_class() -> type[Any]:
    from transformers import TrainerCallback

    class PublishCallback(TrainerCallback):
        def __init__(self, publisher: Publisher) -> None:
            self.publisher = publisher

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.publisher.saved(state.global_step)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.publisher.check()

    return PublishCallback
