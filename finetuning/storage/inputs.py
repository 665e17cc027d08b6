"""A validated config's bucket inputs made local: every field marked as an input (model, tokenizer, adapter, data
files, DeepSpeed/FSDP config files, a checkpoint to resume from) that names ``s3://...`` is fetched through the
machine's download cache and replaced by its local copy, so the rest of the engine only ever sees local paths."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from finetuning.config.base import StrictModel
from finetuning.config.paths import path_fields, set_field
from finetuning.settings import EngineSettings
from finetuning.storage.places import readable
from finetuning.storage.uri import is_remote

if TYPE_CHECKING:
    from finetuning.events import EventWriter

ConfigT = TypeVar("ConfigT", bound=StrictModel)


def remote_inputs(config: StrictModel) -> dict[str, tuple[str, bool]]:
    """Location -> (``s3://`` value, whether it names a folder) for each bucket input of ``config``."""
    return {
        spec.loc: (spec.value, spec.marker.target == "dir")
        for spec in path_fields(config)
        if spec.marker.use == "input" and spec.value is not None and is_remote(spec.value)
    }


def fetch_inputs(config: ConfigT, settings: EngineSettings, events: EventWriter | None = None) -> ConfigT:
    """``config`` with each bucket input replaced by its local copy (``config`` itself when it names none)."""
    remote = remote_inputs(config)
    if not remote:
        return config
    data = config.model_dump(mode="json", by_alias=True, exclude_unset=True)
    for loc, (value, folder) in remote.items():
        set_field(data, loc, readable(value, folder=folder, settings=settings, events=events))
    return type(config).model_validate(data)
