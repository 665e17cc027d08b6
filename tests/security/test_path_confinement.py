"""Path confinement: every file a job names (model, tokenizer, adapter, data set, checkpoint) must lie under the
allowed roots, whatever form the name takes; chained ``job:<id>`` references cannot leave the job's folder; remote
code needs the operator's consent.

tests/service/test_api.py already covers: an absolute data path outside the roots, a ``..`` chain and a symlinked
data file; trust_remote_code refused for SFT; another project's job answering 404 on every job route. This file adds
the other forms, every path field, and the cases those leave out.

Which fields name paths is not listed here: the schema marks them (finetuning.config.paths) and the tests walk the
bodies below with the same walker the API uses, so a field marked tomorrow is tested without a change here.
"""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from security_helpers import make_token, new_project
from sqlalchemy import func, select

from api.jobkinds import REQUEST_MODELS
from api.main import create_app
from finetuning.config.paths import PathMarker, marked_fields, path_fields
from jobcore.db import session_scope
from jobcore.models import Job, JobKind, JobStatus, new_id, utcnow
from jobcore.settings import ServiceSettings
from tests.service.api_helpers import allowed_root, sft_body

REFUSED = {"path_not_allowed", "path_not_found", "invalid_path", "invalid_body", "hub_models_disabled"}


class Caller:
    def __init__(self, client: TestClient, settings: ServiceSettings) -> None:
        self.client = client
        self.project = new_project()
        self.headers = {"Authorization": f"Bearer {make_token(settings, self.project)}"}

    def submit(self, kind: str, body: dict[str, Any]) -> Any:
        return self.client.post(f"/v1/jobs/{kind}", json=body, headers=self.headers)

    def get(self, url: str) -> Any:
        return self.client.get(url, headers=self.headers)


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def caller(client: TestClient, settings: ServiceSettings) -> Caller:
    return Caller(client, settings)


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside every allowed root, with a model folder and a data file in it."""
    path = tmp_path_factory.mktemp("outside")
    (path / "model").mkdir()
    (path / "model" / "config.json").write_text("{}")
    (path / "secret.jsonl").write_text("{}\n")
    return path


def jobs_of(settings: ServiceSettings, project: str) -> int:
    with session_scope(settings.database_url) as session:
        return int(session.scalar(select(func.count()).select_from(Job).where(Job.project == project)) or 0)


def refused(response: Any, param: str, codes: set[str] = REFUSED) -> dict[str, Any]:
    assert response.status_code == 422, response.text[:500]
    error = response.json()["error"]
    assert error["param"] == param, error
    assert error["code"] in codes, error
    return dict(error)


# ---------------------------------------------------------------- every path field, every kind


def _set(body: dict[str, Any], loc: str, value: Any) -> None:
    from finetuning.config.paths import set_field

    set_field(body, loc, value)


def _bodies(model: Path, data: Path) -> dict[str, dict[str, Any]]:
    """A body per kind (and per section variant) that, between them, reach every marked path field."""
    sft = sft_body(model, data)
    sft["run_conf"]["tokenizer"] = str(model)
    sft["run_conf"]["resume_from_checkpoint"] = "auto"  # a string: the walker sees the field (auto is no path)
    sft["data_conf"]["validation_data"] = {"type": "CONCATENATION", "datasets": [{"path": str(data)}]}
    sft["tracking"] = {"mlflow_server_uri": "http://mlflow:5000"}
    pretrained = copy.deepcopy(sft)
    pretrained["peft_conf"] = {"peft_type": "PRETRAINED_PEFT", "name_or_path": str(model)}
    dpo = copy.deepcopy(sft)
    del dpo["sft_args"]
    dpo["training_args"]["loss_type"] = "sigmoid"
    dpo_pretrained = copy.deepcopy(dpo)
    dpo_pretrained["peft_conf"] = {"peft_type": "PRETRAINED_PEFT", "name_or_path": str(model)}
    grpo = copy.deepcopy(sft)
    del grpo["sft_args"]
    grpo["grpo_args"] = {"num_generations": 2}
    grpo["graders"] = [{"name": "yes", "type": "string_check", "operation": "contains", "reference": "yes"}]
    grpo_pretrained = copy.deepcopy(grpo)
    grpo_pretrained["peft_conf"] = {"peft_type": "PRETRAINED_PEFT", "name_or_path": str(model)}
    return {
        "sft": sft,
        "sft-pretrained": pretrained,
        "dpo": dpo,
        "dpo-pretrained": dpo_pretrained,
        "grpo": grpo,
        "grpo-pretrained": grpo_pretrained,
        "merge": {"base_model": str(model), "adapter": str(model), "tokenizer": str(model)},
        # the training config given inline is read by the conversion (its model and tokenizer): confined too
        "adapter-conversion": {"adapter": str(model), "training_config": copy.deepcopy(pretrained)},
        "adapter-conversion-grpo": {"adapter": str(model), "training_config": copy.deepcopy(grpo_pretrained)},
        "generate": {
            "model_conf": {"model": str(model), "adapter": str(model), "tokenizer": str(model)},
            "prompt_conf": {"type": "eval-data", "data": {"path": str(data)}},
        },
    }


def _kind(body_name: str) -> JobKind:
    return JobKind(body_name.removesuffix("-pretrained").removesuffix("-grpo"))


def _reached() -> dict[tuple[JobKind, str], tuple[str, PathMarker]]:
    """Every marked field the bodies reach, found by the schema's walker: (kind, field) -> (the first body that
    reaches it, its marker). No list of fields is kept here: a field marked tomorrow is tested as soon as a body
    reaches it (and test_every_marked_field_is_reached fails until one does)."""
    reached: dict[tuple[JobKind, str], tuple[str, PathMarker]] = {}
    for name, body in _bodies(Path("/m"), Path("/d.jsonl")).items():
        config = REQUEST_MODELS[_kind(name)].validate_config(body)
        for field in path_fields(config):
            reached.setdefault((_kind(name), field.loc), (name, field.marker))
    return reached


def _fields(use: str) -> list[Any]:
    """pytest params (body, field, marker) for every reached field whose marker's use is ``use``."""
    return [
        pytest.param(name, loc, marker, id=f"{kind.value}:{loc}")
        for (kind, loc), (name, marker) in _reached().items()
        if marker.use == use
    ]


def test_every_marked_field_is_reached() -> None:
    """Each kind's marked fields (from its schema) are reached by one of the bodies, so the tests below cover them."""
    reached = {(kind, re.sub(r"\[\d+\]", "[]", loc)) for kind, loc in _reached()}
    missing = [
        f"{kind.value}: {field.loc}"
        for kind, model in REQUEST_MODELS.items()
        for field in marked_fields(model)
        if (kind, field.loc) not in reached
    ]
    assert not missing, f"no body in _bodies reaches these marked fields: add one that does: {missing}"


def test_the_bodies_are_accepted_as_they_are(
    caller: Caller, model_dir: Path, data_file: Path, settings: ServiceSettings
) -> None:
    """The baseline of the tests below: with allowed paths every body is accepted (and stays queued)."""
    for name, body in _bodies(model_dir, data_file).items():
        r = caller.submit(_kind(name).value, body)
        assert r.status_code == 201, (name, r.text[:500])
    assert jobs_of(settings, caller.project) == len(_bodies(model_dir, data_file))


@pytest.mark.parametrize(("body_name", "field", "marker"), _fields("input"))
def test_every_path_field_is_confined(
    caller: Caller,
    model_dir: Path,
    data_file: Path,
    outside: Path,
    settings: ServiceSettings,
    body_name: str,
    field: str,
    marker: PathMarker,
) -> None:
    body = _bodies(model_dir, data_file)[body_name]
    _set(body, field, str(outside / "model") if marker.target == "dir" else str(outside / "secret.jsonl"))
    error = refused(caller.submit(_kind(body_name).value, body), field, {"path_not_allowed"})
    assert "outside the allowed roots" in error["message"]
    assert jobs_of(settings, caller.project) == 0


@pytest.mark.parametrize("escape", ["/etc/x", "../../x", "a/../../x", "~/x", "~root", "..\\x"])
@pytest.mark.parametrize(("body_name", "field", "marker"), _fields("inside"))
def test_names_inside_a_folder_stay_inside(
    caller: Caller,
    model_dir: Path,
    data_file: Path,
    settings: ServiceSettings,
    body_name: str,
    field: str,
    marker: PathMarker,
    escape: str,
) -> None:
    """A folder name joined to another folder (the model's subfolder, the final checkpoint's name inside
    output_dir) cannot leave it: an absolute path would replace the folder, '..' climb out of it."""
    body = _bodies(model_dir, data_file)[body_name]
    _set(body, field, escape)
    error = refused(caller.submit(_kind(body_name).value, body), field, {"path_not_allowed"})
    assert f"inside {marker.within}" in error["message"]
    assert jobs_of(settings, caller.project) == 0


@pytest.mark.parametrize(("body_name", "field", "marker"), _fields("service"))
def test_places_the_service_chooses_are_refused(
    caller: Caller,
    model_dir: Path,
    data_file: Path,
    settings: ServiceSettings,
    body_name: str,
    field: str,
    marker: PathMarker,
) -> None:
    body = _bodies(model_dir, data_file)[body_name]
    _set(body, field, "file:///tmp/store" if marker.target == "uri" else "/tmp/anywhere")
    refused(caller.submit(_kind(body_name).value, body), field, {"path_not_allowed"})
    assert jobs_of(settings, caller.project) == 0


@pytest.mark.parametrize(("body_name", "field", "marker"), _fields("output"))
def test_outputs_go_to_the_jobs_own_folder(
    caller: Caller,
    model_dir: Path,
    data_file: Path,
    settings: ServiceSettings,
    body_name: str,
    field: str,
    marker: PathMarker,
) -> None:
    body = _bodies(model_dir, data_file)[body_name]
    _set(body, field, "/somewhere/else")
    r = caller.submit(_kind(body_name).value, body)
    assert r.status_code == 201, r.text[:300]
    job = r.json()
    resolved: Any = job["resolved"]["config"]
    for part in field.split("."):
        resolved = resolved[part]
    assert resolved == str(settings.job_folder(job["id"]) / "output")
    assert job["resolved"]["overridden"] == {field: "/somewhere/else"}


# ---------------------------------------------------------------- the forms an escape can take


def _escapes(root: Path, outside: Path, folder: bool) -> dict[str, tuple[Callable[[], str], set[str]]]:
    """name -> (makes the path, the error codes it may answer)."""
    target = outside / "model" if folder else outside / "secret.jsonl"
    up = "/".join([".."] * len(root.parts))

    def symlink() -> str:
        link = root / f"link-{secrets.token_hex(4)}"
        link.symlink_to(target, target_is_directory=folder)
        return str(link)

    def symlinked_parent() -> str:
        link = root / f"dir-{secrets.token_hex(4)}"
        link.symlink_to(outside, target_is_directory=True)
        return str(link / target.name)

    def symlink_chain() -> str:  # a link to a link (inside the root) to the outside
        first = Path(symlink())
        second = root / f"chain-{secrets.token_hex(4)}"
        second.symlink_to(first, target_is_directory=folder)
        return str(second)

    not_allowed = {"path_not_allowed"}
    literal = {"path_not_found", "path_not_allowed", "hub_models_disabled"}  # a name that is not decoded or expanded
    return {
        "absolute": (lambda: str(target), not_allowed),
        "dotdot": (lambda: f"{root}/{up}{target}", not_allowed),
        "root/../etc": (lambda: f"{root}/../etc", not_allowed),
        "dotdot-after-a-real-folder": (lambda: f"{root}/{'../' * 12}{str(target).lstrip('/')}", not_allowed),
        "relative-dotdot": (lambda: f"{'../' * 30}{str(target).lstrip('/')}", not_allowed),
        "symlink": (symlink, not_allowed),
        "symlinked-parent": (symlinked_parent, not_allowed),
        "symlink-chain": (symlink_chain, not_allowed),
        "percent-encoded": (lambda: f"{root}/%2e%2e/%2e%2e/{up}{target}", literal),
        "percent-encoded-slashes": (lambda: f"{root}/..%2f..%2f..%2fetc", literal),
        "tilde": (lambda: "~", not_allowed),
        "tilde-slash": (lambda: "~/", not_allowed),
        "tilde-user": (lambda: "~root/secret", not_allowed),
        "nul": (lambda: f"{root}/x\x00/../../etc", {"invalid_body"}),
        "file-uri-outside": (lambda: f"file://{target}", literal),
        "file-uri-inside": (lambda: f"file://{root}", literal),
        "long-component": (lambda: f"{root}/{'a' * 300}", {"invalid_path"}),
        "long-path": (lambda: f"{root}/" + "a/" * 3000, {"invalid_path", "path_not_found"}),
        "very-long-outside": (lambda: "/" + "b" * 100_000, {"path_not_allowed", "invalid_path", "hub_models_disabled"}),
    }


ESCAPES = list(_escapes(Path("/r"), Path("/o"), True))


@pytest.mark.parametrize("form", ESCAPES)
@pytest.mark.parametrize(
    ("body_name", "field", "folder"),
    [("sft", "run_conf.model", True), ("sft", "data_conf.training_data.datasets[0].path", False)],
    ids=["model", "data"],
)
def test_escape_forms_are_refused(
    caller: Caller,
    model_dir: Path,
    data_file: Path,
    outside: Path,
    settings: ServiceSettings,
    form: str,
    body_name: str,
    field: str,
    folder: bool,
) -> None:
    root = allowed_root(settings, 0) if folder else allowed_root(settings, 1)
    make, codes = _escapes(root, outside, folder)[form]
    body = _bodies(model_dir, data_file)[body_name]
    _set(body, field, make())
    if form == "tilde-user" and not folder:
        codes = codes | {"path_not_found"}
    refused(caller.submit(body_name, body), field, codes)
    assert jobs_of(settings, caller.project) == 0


def test_percent_encoding_is_not_decoded(
    caller: Caller, model_dir: Path, data_file: Path, settings: ServiceSettings
) -> None:
    """A folder literally named '%2e%2e' under a root is just a folder: the name is never URL-decoded."""
    literal = allowed_root(settings, 0) / "%2e%2e" / "inner"
    literal.mkdir(parents=True, exist_ok=True)
    body = _bodies(model_dir, data_file)["sft"]
    body["run_conf"]["model"] = str(literal)
    r = caller.submit("sft", body)
    assert r.status_code == 201, r.text[:300]
    assert r.json()["resolved"]["config"]["run_conf"]["model"] == str(literal)


def test_a_symlink_that_stays_inside_is_accepted_as_its_target(
    caller: Caller, model_dir: Path, data_file: Path, settings: ServiceSettings
) -> None:
    link = allowed_root(settings, 1) / f"inside-{secrets.token_hex(3)}.jsonl"
    link.symlink_to(data_file)
    body = _bodies(model_dir, data_file)["sft"]
    body["data_conf"]["training_data"]["datasets"][0]["path"] = str(link)
    r = caller.submit("sft", body)
    assert r.status_code == 201, r.text[:300]
    # what the worker gets is the real path, checked at submission: re-pointing the link later changes nothing
    assert r.json()["resolved"]["config"]["data_conf"]["training_data"]["datasets"][0]["path"] == str(data_file)


# ---------------------------------------------------------------- chained job references


def _succeeded_job(settings: ServiceSettings, project: str, artifacts: dict[str, str]) -> str:
    job_id = new_id()
    with session_scope(settings.database_url) as session:
        session.add(
            Job(
                id=job_id,
                project=project,
                kind=JobKind.SFT.value,
                status=JobStatus.SUCCEEDED.value,
                queue="none",
                labels={},
                config={},
                resolved={"config": {}},
                artifacts=artifacts,
                finished_at=utcnow(),
            )
        )
    return job_id


@pytest.mark.parametrize(
    "suffix",
    ["/../../etc", "/final_checkpoint/../../x", "/..", "/%2e%2e", "/final_checkpoint/", "//etc", "/~", " /x"],
)
def test_job_references_cannot_name_paths(
    caller: Caller, model_dir: Path, settings: ServiceSettings, suffix: str
) -> None:
    """``job:<id>/<artifact>``: the artifact is a name the job recorded, never a path."""
    folder = settings.job_folder(new_id()) / "output" / "checkpoint-final"
    folder.mkdir(parents=True)
    job_id = _succeeded_job(settings, caller.project, {"final_checkpoint": str(folder)})
    body = {"base_model": str(model_dir), "adapter": f"job:{job_id}{suffix}"}
    refused(caller.submit("merge", body), "adapter", {"invalid_job_reference"})


@pytest.mark.parametrize("where", ["outside", "dotdot", "symlink"])
def test_a_job_artifact_outside_the_roots_is_refused(
    caller: Caller, model_dir: Path, outside: Path, settings: ServiceSettings, where: str
) -> None:
    """An artifact record that points out of the job folder (a tampered row, a worker bug) is checked like any
    path: chaining never reads outside the roots."""
    job_dir = settings.job_folder(new_id())
    job_dir.mkdir(parents=True)
    if where == "outside":
        artifact = str(outside / "model")
    elif where == "dotdot":
        artifact = str(job_dir) + "/" + "/".join([".."] * len(job_dir.parts)) + str(outside / "model")
    else:
        link = job_dir / "checkpoint-final"
        link.symlink_to(outside / "model", target_is_directory=True)
        artifact = str(link)
    job_id = _succeeded_job(settings, caller.project, {"final_checkpoint": artifact})
    body = {"base_model": str(model_dir), "adapter": f"job:{job_id}"}
    refused(caller.submit("merge", body), "adapter", {"path_not_allowed"})


# ---------------------------------------------------------------- remote code


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("sft", "run_conf.model_args.trust_remote_code"),
        ("dpo", "run_conf.model_args.trust_remote_code"),
        ("generate", "model_conf.model_args.trust_remote_code"),
    ],
)
def test_trust_remote_code_needs_the_operator(
    caller: Caller,
    client: TestClient,
    settings: ServiceSettings,
    model_dir: Path,
    data_file: Path,
    kind: str,
    field: str,
) -> None:
    body = _bodies(model_dir, data_file)[kind]
    if kind == "generate":
        body["prompt_conf"] = {"type": "open-input", "input": "hi"}
    _set(body, field.rsplit(".", 1)[0], {"trust_remote_code": True})
    error = refused(caller.submit(kind, body), field, {"trust_remote_code_disabled"})
    assert "allow_trust_remote_code" in error["message"]
    # the same body with the operator's consent
    allowing = create_app(settings.model_copy(update={"allow_trust_remote_code": True}))
    with TestClient(allowing) as other:
        r = other.post(f"/v1/jobs/{kind}", json=body, headers=caller.headers)
    assert r.status_code == 201, r.text[:300]
    resolved = r.json()["resolved"]["config"]
    section = resolved["run_conf"] if kind != "generate" else resolved["model_conf"]
    assert section["model_args"]["trust_remote_code"] is True


def test_trust_remote_code_cannot_come_in_elsewhere(caller: Caller, model_dir: Path, data_file: Path) -> None:
    """The transformers training argument of the same name is not a back door."""
    body = _bodies(model_dir, data_file)["sft"]
    body["training_args"]["trust_remote_code"] = True
    refused(caller.submit("sft", body), "training_args.trust_remote_code", {"invalid_config"})


# ---------------------------------------------------------------- projects


def test_another_projects_job_id_is_not_a_list_cursor(
    caller: Caller, client: TestClient, settings: ServiceSettings
) -> None:
    """The one job route tests/service/test_api.py leaves out: ``GET /v1/jobs?after=<their job>`` is refused
    exactly like an unknown id, so it reveals nothing."""
    theirs = _succeeded_job(settings, new_project(), {})
    mine = caller.get(f"/v1/jobs?after={theirs}")
    unknown = caller.get(f"/v1/jobs?after={new_id()}")
    assert (mine.status_code, unknown.status_code) == (422, 422)
    assert mine.json()["error"]["code"] == unknown.json()["error"]["code"] == "invalid_cursor"


# ---------------------------------------------------------------- model_args: from_pretrained keywords


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("subfolder", "../../../.."),
        ("subfolder", "/etc"),
        ("subfolder", "weights/../../x"),
        ("cache_dir", "/"),
        ("offload_folder", "/"),
        ("gguf_file", "/etc/passwd"),
        ("state_dict_path", "x"),
    ],
)
def test_model_args_folders_are_confined(
    caller: Caller, model_dir: Path, data_file: Path, key: str, value: str
) -> None:
    body = _bodies(model_dir, data_file)["sft"]
    body["run_conf"]["model_args"] = {key: value}
    refused(caller.submit("sft", body), f"run_conf.model_args.{key}", {"path_not_allowed"})


def test_a_subfolder_inside_the_model_is_accepted(caller: Caller, model_dir: Path, data_file: Path) -> None:
    body = _bodies(model_dir, data_file)["sft"]
    body["run_conf"]["model_args"] = {"subfolder": "weights/v2"}
    assert caller.submit("sft", body).status_code == 201


@pytest.mark.parametrize("name", ["deepspeed", "fsdp_config"])
def test_training_config_files_are_confined(
    caller: Caller, model_dir: Path, data_file: Path, tmp_path: Path, name: str
) -> None:
    outside = tmp_path / f"{name}.json"
    outside.write_text("{}")
    body = _bodies(model_dir, data_file)["sft"]
    body["training_args"][name] = str(outside)
    refused(caller.submit("sft", body), f"training_args.{name}", {"path_not_allowed"})


@pytest.mark.parametrize("uri", ["file:///tmp/mlruns", "sqlite:////tmp/mlflow.db", "/tmp/mlruns", "./mlruns"])
def test_a_local_mlflow_store_is_refused(caller: Caller, model_dir: Path, data_file: Path, uri: str) -> None:
    body = _bodies(model_dir, data_file)["sft"]
    body["tracking"] = {"mlflow_server_uri": uri}
    refused(caller.submit("sft", body), "tracking.mlflow_server_uri", {"path_not_allowed"})


@pytest.mark.parametrize(
    ("name", "inline", "param"),
    [
        (
            "deepspeed",
            {"zero_optimization": {"stage": 3, "offload_param": {"device": "nvme", "nvme_path": "/tmp/swap"}}},
            "training_args.deepspeed.zero_optimization.offload_param.nvme_path",
        ),
        (
            "deepspeed",
            {"tensorboard": {"enabled": True, "output_path": "/tmp/tb"}},
            "training_args.deepspeed.tensorboard.output_path",
        ),
        ("fsdp_config", {"some_dir": "/etc"}, "training_args.fsdp_config.some_dir"),
    ],
)
def test_inline_library_settings_cannot_name_places(
    caller: Caller, model_dir: Path, data_file: Path, name: str, inline: dict[str, Any], param: str
) -> None:
    """DeepSpeed, FSDP and accelerate settings given inline are free-form: a path-like key anywhere in them is refused
    (DeepSpeed would write its NVMe swap files or a monitor's output wherever it says)."""
    body = _bodies(model_dir, data_file)["sft"]
    body["training_args"][name] = inline
    refused(caller.submit("sft", body), param, {"path_not_allowed"})


def test_inline_library_settings_without_places_are_accepted(caller: Caller, model_dir: Path, data_file: Path) -> None:
    body = _bodies(model_dir, data_file)["sft"]
    body["training_args"]["fsdp_config"] = {"min_num_params": 1000}
    assert caller.submit("sft", body).status_code == 201
