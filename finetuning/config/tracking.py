"""``tracking``: MLflow set-up from the config (CLI flags win over it; it wins over the environment)."""

from __future__ import annotations

from pydantic import Field

from finetuning.config.base import StrictModel
from finetuning.config.paths import TrackingUri


class TrackingConf(StrictModel):
    mlflow_server_uri: TrackingUri | None = Field(
        default=None,
        description='Tracking URI, e.g. "file:///home/me/mlruns", "sqlite:///mlflow.db" or "http://mlflow:5000". '
        "Empty or null: the config does not set up MLflow.",
    )
    experiment_name: str = "default"
    hf_mlflow_log_artifacts: str = Field(default="False", description='"True" or "1" copies checkpoints to MLflow.')

    @property
    def enabled(self) -> bool:
        return bool(self.mlflow_server_uri)
