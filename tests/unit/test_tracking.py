"""MLflow tracking precedence (CLI > config > MLFLOW_TRACKING_URI > off) and its effect on report_to."""

import json
import re

import pytest

from finetuning.config.tracking import TrackingConf
from finetuning.settings import EngineSettings
from finetuning.tracking import TrackingCli, apply_report_to, configure_tracking, random_run_name

CLI_URI = "http://mlflow-cli:5000"
CONFIG_URI = "http://mlflow-config:5000"
ENV_URI = "http://mlflow-env:5000"
RUN_NAME = re.compile(r"[A-Za-z0-9-]{8}")


def settings(uri: str | None = None) -> EngineSettings:
    # Explicit, so a MLFLOW_TRACKING_URI in the developer's shell cannot leak into the test.
    return EngineSettings(mlflow_tracking_uri=uri)


def run_name_tag(environ: dict[str, str]) -> str:
    return str(json.loads(environ["MLFLOW_TAGS"])["mlflow.runName"])


def test_cli_beats_config_and_env() -> None:
    environ: dict[str, str] = {"MLFLOW_TRACKING_URI": ENV_URI}
    cli = TrackingCli(mlflow_server_uri=CLI_URI, experiment_name="cli-exp", hf_mlflow_log_artifacts="True")
    config = TrackingConf(mlflow_server_uri=CONFIG_URI, experiment_name="config-exp")

    decision = configure_tracking(cli, config, settings(ENV_URI), environ)

    assert (decision.enabled, decision.source, decision.uri, decision.experiment) == (True, "cli", CLI_URI, "cli-exp")
    assert environ["MLFLOW_TRACKING_URI"] == CLI_URI
    assert environ["MLFLOW_EXPERIMENT_NAME"] == "cli-exp"
    assert environ["MLFLOW_FLATTEN_PARAMS"] == "TRUE"
    assert environ["HF_MLFLOW_LOG_ARTIFACTS"] == "True"
    assert decision.run_name is not None
    assert RUN_NAME.fullmatch(decision.run_name)
    assert run_name_tag(environ) == decision.run_name
    assert "DISABLE_MLFLOW_INTEGRATION" not in environ
    assert "MLFLOW_ALLOW_FILE_STORE" not in environ


def test_config_beats_env() -> None:
    environ: dict[str, str] = {"MLFLOW_TRACKING_URI": ENV_URI}
    config = TrackingConf(mlflow_server_uri=CONFIG_URI, experiment_name="config-exp")

    decision = configure_tracking(TrackingCli(), config, settings(ENV_URI), environ)

    assert (decision.source, decision.uri, decision.experiment) == ("config", CONFIG_URI, "config-exp")
    assert environ["MLFLOW_TRACKING_URI"] == CONFIG_URI
    assert environ["MLFLOW_EXPERIMENT_NAME"] == "config-exp"
    assert environ["MLFLOW_FLATTEN_PARAMS"] == "TRUE"
    assert environ["HF_MLFLOW_LOG_ARTIFACTS"] == "False"
    assert run_name_tag(environ) == decision.run_name


@pytest.mark.parametrize("config", [None, TrackingConf(), TrackingConf(mlflow_server_uri="", experiment_name="x")])
def test_env_only_tags_a_run_name(config: TrackingConf | None) -> None:
    # An empty or missing mlflow_server_uri in the config falls through to the environment.
    environ: dict[str, str] = {"MLFLOW_TRACKING_URI": ENV_URI, "MLFLOW_EXPERIMENT_NAME": "users-exp"}

    decision = configure_tracking(TrackingCli(), config, settings(ENV_URI), environ)

    assert (decision.enabled, decision.source, decision.uri) == (True, "env", ENV_URI)
    assert decision.experiment == "users-exp"
    assert set(environ) == {"MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_TAGS"}
    assert environ["MLFLOW_EXPERIMENT_NAME"] == "users-exp"
    assert run_name_tag(environ) == decision.run_name


def test_env_keeps_the_users_tags() -> None:
    environ = {"MLFLOW_TRACKING_URI": ENV_URI, "MLFLOW_TAGS": '{"team": "nlp"}'}

    decision = configure_tracking(TrackingCli(), None, settings(ENV_URI), environ)

    assert json.loads(environ["MLFLOW_TAGS"]) == {"team": "nlp", "mlflow.runName": decision.run_name}


def test_malformed_tags_are_named() -> None:
    with pytest.raises(ValueError, match="MLFLOW_TAGS must be a JSON object"):
        configure_tracking(TrackingCli(), None, settings(ENV_URI), {"MLFLOW_TAGS": "team=nlp"})


@pytest.mark.parametrize("config", [None, TrackingConf(), TrackingConf(mlflow_server_uri="")])
def test_nothing_set_disables_the_integration(config: TrackingConf | None) -> None:
    environ: dict[str, str] = {}

    decision = configure_tracking(TrackingCli(), config, settings(), environ)

    assert (decision.enabled, decision.source, decision.uri, decision.run_name) == (False, "disabled", None, None)
    assert environ == {"DISABLE_MLFLOW_INTEGRATION": "TRUE"}


def test_enabling_clears_a_stale_disable_flag() -> None:
    environ = {"DISABLE_MLFLOW_INTEGRATION": "TRUE"}
    configure_tracking(TrackingCli(mlflow_server_uri=CLI_URI), None, settings(), environ)
    assert "DISABLE_MLFLOW_INTEGRATION" not in environ


@pytest.mark.parametrize("uri", ["file:///home/me/mlruns", "./mlruns", "/tmp/mlruns"])
def test_file_store_is_allowed(uri: str) -> None:
    environ: dict[str, str] = {}
    configure_tracking(TrackingCli(), TrackingConf(mlflow_server_uri=uri), settings(), environ)
    assert environ["MLFLOW_ALLOW_FILE_STORE"] == "true"


def test_file_store_from_env_is_allowed() -> None:
    environ: dict[str, str] = {}
    configure_tracking(TrackingCli(), None, settings("file:///home/me/mlruns"), environ)
    assert environ["MLFLOW_ALLOW_FILE_STORE"] == "true"


@pytest.mark.parametrize("uri", ["sqlite:///mlflow.db", "http://mlflow:5000", "databricks"])
def test_other_stores_do_not_touch_the_file_store_flag(uri: str) -> None:
    environ: dict[str, str] = {}
    configure_tracking(TrackingCli(mlflow_server_uri=uri), None, settings(), environ)
    assert "MLFLOW_ALLOW_FILE_STORE" not in environ


def test_run_names_are_random() -> None:
    names = {random_run_name() for _ in range(20)}
    assert len(names) == 20
    assert all(RUN_NAME.fullmatch(name) for name in names)


@pytest.mark.parametrize(
    ("report_to", "expected"),
    [
        (None, ["mlflow"]),
        ("none", ["mlflow"]),
        ([], ["mlflow"]),
        ("tensorboard", ["tensorboard", "mlflow"]),
        (["tensorboard"], ["tensorboard", "mlflow"]),
        (["mlflow", "tensorboard"], ["mlflow", "tensorboard"]),
        ("mlflow", ["mlflow"]),
        ("all", "all"),
        (["all"], ["all"]),
    ],
)
def test_report_to_when_enabled(report_to: str | list[str] | None, expected: list[str] | str) -> None:
    assert apply_report_to(report_to, enabled=True) == expected


@pytest.mark.parametrize(
    ("report_to", "expected"),
    [
        (None, []),
        ("none", []),
        ("mlflow", []),
        (["mlflow", "tensorboard"], ["tensorboard"]),
        ("tensorboard", ["tensorboard"]),
    ],
)
def test_report_to_when_disabled(report_to: str | list[str] | None, expected: list[str]) -> None:
    assert apply_report_to(report_to, enabled=False) == expected


@pytest.mark.parametrize("report_to", ["all", ["all"]])
def test_report_to_all_without_mlflow_is_an_error(report_to: str | list[str]) -> None:
    with pytest.raises(ValueError, match='report_to is "all".*List the integrations.*--mlflow-server-uri'):
        apply_report_to(report_to, enabled=False)


def test_report_to_does_not_change_its_argument() -> None:
    report_to = ["tensorboard"]
    apply_report_to(report_to, enabled=True)
    assert report_to == ["tensorboard"]


def test_settings_read_the_exact_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", ENV_URI)
    monkeypatch.setenv("CHECKPOINTS_PATH", "/data/ckpt")
    monkeypatch.setenv("FINETUNING_EVENTS_FILE", "/data/events.jsonl")
    monkeypatch.setenv("FINETUNING_CACHE_DIR", "~/cache")
    monkeypatch.setenv("EVENTS_FILE", "/wrong")  # a field name is not an env name

    loaded = EngineSettings()

    assert loaded.mlflow_tracking_uri == ENV_URI
    assert str(loaded.checkpoints_path) == "/data/ckpt"
    assert str(loaded.events_file) == "/data/events.jsonl"
    assert not str(loaded.cache_dir).startswith("~")


def test_settings_defaults_and_empty_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CHECKPOINTS_PATH", "FINETUNING_CACHE_DIR", "EVENTS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")  # exported but empty means unset
    monkeypatch.setenv("FINETUNING_EVENTS_FILE", "")

    loaded = EngineSettings()

    assert loaded.mlflow_tracking_uri is None
    assert loaded.events_file is None
    assert str(loaded.checkpoints_path) == "checkpoints"
    assert loaded.cache_dir.parts[-2:] == (".cache", "silogen-finetuning")
