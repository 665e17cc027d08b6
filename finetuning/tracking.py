"""MLflow tracking set-up: decide where a run is tracked and tell transformers' ``MLflowCallback`` through env vars.

Precedence, highest first (engine-original.md §13): the CLI ``--mlflow-server-uri``; the config's ``tracking``
section with a non-empty ``mlflow_server_uri``; the ``MLFLOW_TRACKING_URI`` environment variable (then only a run
name is added); otherwise MLflow is disabled. The callback reads its settings from the environment when training
starts, so :func:`configure_tracking` is the one place in the engine that writes tracking variables to it.

Importing this module does not import torch, transformers or mlflow.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

from finetuning.config.tracking import TrackingConf
from finetuning.settings import EngineSettings

TrackingSource = Literal["cli", "config", "env", "disabled"]

# Every variable configure_tracking may write or remove; tests use it to restore the environment.
TRACKING_ENV_VARS = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_FLATTEN_PARAMS",
    "MLFLOW_TAGS",
    "MLFLOW_ALLOW_FILE_STORE",
    "HF_MLFLOW_LOG_ARTIFACTS",
    "DISABLE_MLFLOW_INTEGRATION",
)

_RUN_NAME_ALPHABET = string.ascii_letters + string.digits + "-"
_RUN_NAME_TAG = "mlflow.runName"


@dataclass(frozen=True)
class TrackingCli:
    """The tracking flags of the training CLIs; ``mlflow_server_uri=None`` means the flag was not given."""

    mlflow_server_uri: str | None = None
    experiment_name: str = "default"
    hf_mlflow_log_artifacts: str = "False"


@dataclass(frozen=True)
class TrackingDecision:
    """Where this run is tracked, and which setting decided it."""

    enabled: bool
    source: TrackingSource
    uri: str | None = None
    experiment: str | None = None  # None: whatever MLFLOW_EXPERIMENT_NAME says, else MLflow's "Default"
    run_name: str | None = None


def random_run_name(length: int = 8) -> str:
    """A random run name of ``[A-Za-z0-9-]`` characters, as the original engine tagged its runs."""
    return "".join(secrets.choice(_RUN_NAME_ALPHABET) for _ in range(length))


def configure_tracking(
    cli: TrackingCli,
    config: TrackingConf | None,
    settings: EngineSettings,
    environ: MutableMapping[str, str] | None = None,
) -> TrackingDecision:
    """Pick the tracking source by precedence and set the env vars ``MLflowCallback`` reads; return the decision.

    ``environ`` defaults to ``os.environ`` as it is at call time (some libraries swap the object)."""
    if environ is None:
        environ = os.environ
    if cli.mlflow_server_uri:
        return _enable(environ, "cli", cli.mlflow_server_uri, cli.experiment_name, cli.hf_mlflow_log_artifacts)
    if config is not None and config.mlflow_server_uri:
        return _enable(
            environ, "config", config.mlflow_server_uri, config.experiment_name, config.hf_mlflow_log_artifacts
        )
    if settings.mlflow_tracking_uri:
        # The user configured MLflow through its own variables; respect them and only name the run.
        uri = settings.mlflow_tracking_uri
        environ["MLFLOW_TRACKING_URI"] = uri
        _allow_file_store(environ, uri)
        environ.pop("DISABLE_MLFLOW_INTEGRATION", None)
        run_name = _tag_run_name(environ)
        return TrackingDecision(True, "env", uri, environ.get("MLFLOW_EXPERIMENT_NAME"), run_name)
    environ["DISABLE_MLFLOW_INTEGRATION"] = "TRUE"
    return TrackingDecision(False, "disabled")


def apply_report_to(report_to: str | list[str] | None, enabled: bool) -> list[str] | str:
    """Return ``training_args.report_to`` with "mlflow" added (tracking on) or removed (tracking off).

    Raises:
        ValueError: tracking is off and ``report_to`` is "all", which would turn MLflow on.
    """
    if (isinstance(report_to, str) and report_to == "all") or (isinstance(report_to, list) and "all" in report_to):
        if not enabled:
            raise ValueError(
                'training_args.report_to is "all", which includes MLflow, but MLflow tracking is not configured. '
                "List the integrations you want instead (e.g. report_to: [tensorboard]), or enable MLflow with "
                "--mlflow-server-uri, a tracking.mlflow_server_uri in the config, or MLFLOW_TRACKING_URI."
            )
        return report_to  # "all" already includes mlflow
    if report_to is None or report_to == "none":
        integrations: list[str] = []
    elif isinstance(report_to, str):
        integrations = [report_to]
    else:
        integrations = [name for name in report_to if name != "none"]
    if not enabled:
        return [name for name in integrations if name != "mlflow"]
    return integrations if "mlflow" in integrations else [*integrations, "mlflow"]


def _enable(
    environ: MutableMapping[str, str],
    source: TrackingSource,
    uri: str,
    experiment: str,
    log_artifacts: str,
) -> TrackingDecision:
    environ["MLFLOW_TRACKING_URI"] = uri
    environ["MLFLOW_EXPERIMENT_NAME"] = experiment
    # Nested dicts (e.g. peft_config) logged unflattened exceed MLflow's 250-character param limit and are dropped.
    environ["MLFLOW_FLATTEN_PARAMS"] = "TRUE"
    environ["HF_MLFLOW_LOG_ARTIFACTS"] = log_artifacts
    _allow_file_store(environ, uri)
    # A leftover DISABLE flag (e.g. from the parent process) would make MLflowCallback() raise
    # "requires mlflow to be installed" although it is.
    environ.pop("DISABLE_MLFLOW_INTEGRATION", None)
    run_name = _tag_run_name(environ)
    return TrackingDecision(True, source, uri, experiment, run_name)


def _allow_file_store(environ: MutableMapping[str, str], uri: str) -> None:
    # MLflow 3.x refuses the file store ("maintenance mode") unless opted in; a file: URI or a bare path is the
    # user's explicit choice of one (the original engine's README documents file:///home/<user>/mlruns).
    # "databricks" has no scheme either but is not a path.
    scheme = urlparse(uri).scheme
    if scheme == "file" or (not scheme and not uri.startswith("databricks")):
        environ["MLFLOW_ALLOW_FILE_STORE"] = "true"


def _tag_run_name(environ: MutableMapping[str, str]) -> str:
    """Add a random ``mlflow.runName`` to ``MLFLOW_TAGS``, keeping tags (and a run name) the user already set."""
    raw = environ.get("MLFLOW_TAGS")
    try:
        tags = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        tags = None
    if not isinstance(tags, dict):
        raise ValueError(f'MLFLOW_TAGS must be a JSON object, e.g. {{"team": "nlp"}}; got {raw!r}. Fix or unset it.')
    run_name = str(tags.setdefault(_RUN_NAME_TAG, random_run_name()))
    environ["MLFLOW_TAGS"] = json.dumps(tags)
    return run_name


@contextmanager
def mlflow_run(
    decision: TrackingDecision, *, main_process: bool, tags: Mapping[str, str] | None = None
) -> Iterator[str | None]:
    """Open the MLflow run around training and the final evaluation; yields its id (None when tracking is off).

    Opening it here, rather than leaving it to ``MLflowCallback``, keeps a final ``trainer.evaluate()`` in the
    same run (the callback ends the run it opened at train end) and pins the experiment explicitly.
    """
    if not decision.enabled or decision.uri is None or not main_process:
        yield None
        return
    import mlflow

    mlflow.set_tracking_uri(decision.uri)
    mlflow.set_experiment(decision.experiment or "Default")
    with mlflow.start_run(run_name=decision.run_name, tags=dict(tags or {})) as run:
        yield run.info.run_id
