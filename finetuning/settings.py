"""The engine's settings: every environment variable the engine reads, each with its default.

Nothing else in the engine reads ``os.environ`` for its own settings; call :func:`get_engine_settings` where they are
needed (it builds them fresh, so tests can change the environment between calls).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from finetuning.contract import EVENTS_FILE_ENV, JOB_ATTEMPT_ENV, JOB_ID_ENV, STAGING_DIR_ENV


class EngineSettings(BaseSettings):
    """Engine settings from the environment; the env name of each field is its ``validation_alias``."""

    model_config = SettingsConfigDict(
        # Exact env names only (validation_alias below), no prefix; unrelated variables are ignored.
        extra="ignore",
        # An exported but empty variable means "not set", as it does for MLflow and most shells' users.
        env_ignore_empty=True,
        # Lets tests and callers pass field names: EngineSettings(events_file=...).
        populate_by_name=True,
    )

    checkpoints_path: Path = Field(
        default=Path("./checkpoints"),
        validation_alias="CHECKPOINTS_PATH",
        description="Where training writes checkpoints and the final model (default ./checkpoints).",
    )
    events_file: Path | None = Field(
        default=None,
        validation_alias=EVENTS_FILE_ENV,
        description="JSON-lines file the engine appends machine-readable events to (see docs/events.md). "
        "Default: none, no events are written.",
    )
    cache_dir: Path = Field(
        default=Path("~/.cache/silogen-finetuning"),
        validation_alias="FINETUNING_CACHE_DIR",
        description="Cache for preprocessed data and similar (default ~/.cache/silogen-finetuning).",
    )
    storage_cache_dir: Path | None = Field(
        default=None,
        validation_alias="FINETUNING_STORAGE_CACHE_DIR",
        description="Where models and data read from buckets (s3://) are cached, shared by the runs of a machine. "
        "Default: <FINETUNING_CACHE_DIR>/storage.",
    )
    storage_cache_max_gb: float = Field(
        default=200.0,
        gt=0,
        validation_alias="FINETUNING_STORAGE_CACHE_MAX_GB",
        description="Size of that cache; the least recently used inputs are deleted beyond it (never one in use).",
    )
    preprocess_cache_max_gb: float = Field(
        default=100.0,
        gt=0,
        validation_alias="FINETUNING_PREPROCESS_CACHE_MAX_GB",
        description="Size of the preprocessing cache (<FINETUNING_CACHE_DIR>/preprocessed: tokenized data, packed, "
        "preference and prompt rows); once a run's data is prepared, the least recently used entries are deleted "
        "beyond it (never one in use).",
    )
    staging_dir: Path | None = Field(
        default=None,
        validation_alias=STAGING_DIR_ENV,
        description="Where a run whose output goes to a bucket writes it before uploading (checkpoints, final model). "
        "Default: <FINETUNING_CACHE_DIR>/staging.",
    )
    upload_retry_seconds: float = Field(
        default=900.0,
        ge=0,
        validation_alias="FINETUNING_UPLOAD_RETRY_SECONDS",
        description="How long a failing upload is retried (with back-off) before the run fails with storage_error.",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias="MLFLOW_TRACKING_URI",
        description="MLflow tracking URI; used only when neither the CLI nor the config sets one. Default: none.",
    )
    image: str | None = Field(
        default=None,
        validation_alias="FINETUNING_IMAGE",
        description="The container image this runs in, as built (REGISTRY/NAME:TAG; the worker images set it). "
        "Recorded in each run's manifest. Default: none.",
    )
    image_revision: str | None = Field(
        default=None,
        validation_alias="FINETUNING_IMAGE_REVISION",
        description="The commit the image was built from (the worker images set it). Recorded in each run's "
        "manifest. Default: none.",
    )
    image_digest: str | None = Field(
        default=None,
        validation_alias="FINETUNING_IMAGE_DIGEST",
        description="The image's content digest (sha256:...), set by the deployment that pulled it by digest (an "
        "image cannot hold its own digest). Recorded in each run's manifest. Default: none.",
    )

    job_id: str | None = Field(
        default=None,
        validation_alias=JOB_ID_ENV,
        description="Set by the service's worker: the job this run belongs to (an MLflow tag). Default: none.",
    )
    attempt: int | None = Field(
        default=None,
        validation_alias=JOB_ATTEMPT_ENV,
        description="Set by the service's worker: which run of the job this is; every event and the MLflow run carry "
        "it. Default: none.",
    )

    @property
    def storage_cache(self) -> Path:
        return self.storage_cache_dir or self.cache_dir / "storage"

    @property
    def staging(self) -> Path:
        return self.staging_dir or self.cache_dir / "staging"

    @field_validator("checkpoints_path", "events_file", "cache_dir", "storage_cache_dir", "staging_dir", mode="after")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        # A quoted "~/..." in an env file or a container spec reaches us unexpanded.
        return None if value is None else value.expanduser()


def get_engine_settings() -> EngineSettings:
    """Read the settings from the current environment (fresh each call: no import-time global)."""
    return EngineSettings()
