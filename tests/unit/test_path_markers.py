"""Fields that name files or folders are marked in the schema (finetuning.config.paths) and found by walking it.

The API confines what the walker finds (api.resolve), so these tests guard the walker and the marking: a known list
of path fields is found, a field marked tomorrow is found without any list changing, and a field whose name looks
like a path but carries no marker fails here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from api.jobkinds import REQUEST_MODELS
from finetuning.config import GenerateConfig, SFTConfig
from finetuning.config.paths import (
    DataFile,
    ModelPath,
    PathMarker,
    marked_fields,
    path_fields,
    schema_fields,
    text_marker,
)
from jobcore.models import JobKind

# What the API confined by hand before the marker existed, plus the fields it checked elsewhere (resume, the
# training config files, the tracking store, the output folder, the from_pretrained folders): all must be found.
KNOWN_PATH_FIELDS: dict[JobKind, set[str]] = {
    JobKind.SFT: {
        "run_conf.model",
        "run_conf.tokenizer",
        "run_conf.resume_from_checkpoint",
        "run_conf.model_args.cache_dir",
        "run_conf.model_args.offload_folder",
        "run_conf.model_args.subfolder",
        "peft_conf.name_or_path",
        "data_conf.training_data.datasets[].path",
        "data_conf.validation_data.datasets[].path",
        "training_args.output_dir",
        "training_args.deepspeed",
        "training_args.fsdp_config",
        "tracking.mlflow_server_uri",
    },
    JobKind.DPO: {
        "run_conf.model",
        "run_conf.tokenizer",
        "run_conf.resume_from_checkpoint",
        "peft_conf.name_or_path",
        "data_conf.training_data.datasets[].path",
        "data_conf.validation_data.datasets[].path",
        "training_args.output_dir",
        "training_args.deepspeed",
        "training_args.fsdp_config",
        "tracking.mlflow_server_uri",
    },
    JobKind.GRPO: {
        "run_conf.model",
        "run_conf.tokenizer",
        "run_conf.resume_from_checkpoint",
        "peft_conf.name_or_path",
        "data_conf.training_data.datasets[].path",
        "data_conf.validation_data.datasets[].path",
        "training_args.output_dir",
        "training_args.deepspeed",
        "training_args.fsdp_config",
        "tracking.mlflow_server_uri",
        "run_conf.final_checkpoint_name",
        "grpo_args.save_name_if_new_basemodel",
    },
    JobKind.MERGE: {"base_model", "adapter", "tokenizer"},
    JobKind.ADAPTER_CONVERSION: {"adapter"},
    JobKind.GENERATE: {
        "model_conf.model",
        "model_conf.adapter",
        "model_conf.tokenizer",
        "model_conf.model_args.subfolder",
        "prompt_conf.data.path",
    },
}


@pytest.mark.parametrize("kind", list(JobKind))
def test_the_walker_finds_every_known_path_field(kind: JobKind) -> None:
    found = {field.loc for field in marked_fields(REQUEST_MODELS[kind])}
    assert KNOWN_PATH_FIELDS[kind] <= found, KNOWN_PATH_FIELDS[kind] - found


def test_fields_found_that_no_hand_list_had() -> None:
    """The ones the hand-written list missed (see the commit): a training config file, the folders a run writes
    inside its output folder, and every path of the training config an adapter conversion is given inline."""
    sft = {field.loc for field in marked_fields(SFTConfig)}
    assert {
        "training_args.accelerator_config",
        "run_conf.final_checkpoint_name",
        "sft_args.save_name_if_new_basemodel",
    } <= sft
    conversion = {field.loc for field in marked_fields(REQUEST_MODELS[JobKind.ADAPTER_CONVERSION])}
    assert {"training_config.run_conf.model", "training_config.run_conf.tokenizer"} <= conversion


# ---------------------------------------------------------------- a field marked tomorrow is found


class _Leaf(BaseModel):
    weights: ModelPath
    note: str = "not a path"


class _A(BaseModel):
    kind: Literal["a"] = "a"
    lookup_table: DataFile


class _B(BaseModel):
    kind: Literal["b"] = "b"
    leaves: list[_Leaf] = Field(default_factory=list)


class _Root(BaseModel):
    """Every shape the walker goes through: a top-level marked field, an optional one, a marked member of a union
    with a bool, a list of marked strings, a dict of models, a discriminated union and a plain one."""

    vocabulary_file: Annotated[str, PathMarker("file")]
    spare: DataFile | None = None
    outer: Annotated[str | None, PathMarker("dir")] = None  # the marker on the union: its str member is marked
    resume: bool | Annotated[str, PathMarker("dir", not_paths=("auto",))] = False
    extra_files: list[DataFile] = Field(default_factory=list)
    by_name: dict[str, _Leaf] = Field(default_factory=dict)
    choice: Annotated[_A | _B, Field(discriminator="kind")]
    either: _Leaf | int = 0


def test_a_new_marked_field_is_found_without_any_list() -> None:
    schema = {field.loc: field.marker for field in marked_fields(_Root)}
    assert set(schema) == {
        "vocabulary_file",
        "spare",
        "outer",
        "resume",
        "extra_files[]",
        "by_name.{}.weights",
        "choice.lookup_table",
        "choice.leaves[].weights",
        "either.weights",
    }
    assert schema["resume"] == PathMarker("dir", not_paths=("auto",))
    config = _Root.model_validate(
        {
            "vocabulary_file": "v.txt",
            "resume": "ckpt",
            "extra_files": ["x.jsonl", "y.jsonl"],
            "by_name": {"first": {"weights": "m1"}},
            "choice": {"kind": "b", "leaves": [{"weights": "m2"}, {"weights": "m3"}]},
            "either": {"weights": "m4"},
        }
    )
    found = {field.loc: field.value for field in path_fields(config)}
    assert found == {
        "vocabulary_file": "v.txt",
        "spare": None,
        "outer": None,
        "resume": "ckpt",
        "extra_files[0]": "x.jsonl",
        "extra_files[1]": "y.jsonl",
        "by_name.first.weights": "m1",
        "choice.leaves[0].weights": "m2",
        "choice.leaves[1].weights": "m3",
        "either.weights": "m4",
    }
    explicit = {field.loc: field.explicit for field in path_fields(config)}
    assert explicit["vocabulary_file"]
    assert not explicit["spare"]


def test_an_unset_value_is_not_a_path() -> None:
    config = _Root.model_validate(
        {"vocabulary_file": "v", "resume": False, "choice": {"kind": "a", "lookup_table": "t"}}
    )
    fields = {field.loc: field for field in path_fields(config)}
    assert "resume" not in fields  # a bool, not a string
    assert fields["spare"].unset
    assert fields["spare"].optional
    assert fields["choice.lookup_table"].value == "t"


def test_a_marker_must_annotate_the_string() -> None:
    class Misplaced(BaseModel):
        files: Annotated[list[str], PathMarker("file")]

    with pytest.raises(TypeError, match="files: a path marker annotates"):
        list(schema_fields(Misplaced))


def test_one_marker_per_field() -> None:
    with pytest.raises(TypeError, match="more than one path marker"):
        text_marker(Annotated[str, PathMarker("file")] | Annotated[str, PathMarker("dir")])


# ---------------------------------------------------------------- the guard: a path-like name needs a marker

# Names that look like paths: *_path, *_dir, *_file, *_folder, *_uri, *_url, the model/tokenizer/adapter words,
# checkpoints, a base model saved under a name, and *_config fields that take a string (a JSON file name).
PATH_LIKE_NAME = re.compile(
    r"(^|_)(path|paths|dir|dirs|directory|folder|file|files|uri|url|name_or_path)$"
    r"|(^|_)(model|tokenizer|adapter|checkpoint|basemodel)(_|$)"
    r"|^deepspeed$|_config$"
)

# Fields whose name looks like a path but whose value is not one. Each entry says what the value is instead.
NOT_PATHS: dict[str, str] = {
    "metric_for_best_model": "the name of a metric (e.g. eval_loss) that picks the best checkpoint",
    "hub_model_id": "the hub repository push_to_hub writes to: a repository name, never read from the disk",
}


def _path_like_fields(roots: Mapping[str, type[BaseModel]]) -> list[tuple[str, str, Any]]:
    """(owner class, field name, (where, field)) for each field of ``roots`` that holds text and has a path's name."""
    seen: dict[tuple[str, str], Any] = {}
    for root_name, model in roots.items():
        for field in schema_fields(model):
            if field.accepts_text() and PATH_LIKE_NAME.search(field.name):
                seen.setdefault((field.owner.__name__, field.name), (f"{root_name}: {field.loc}", field))
    return [(owner, name, value) for (owner, name), value in sorted(seen.items())]


def _unmarked(roots: Mapping[str, type[BaseModel]]) -> list[str]:
    return [
        f"{where} ({owner}.{name})"
        for owner, name, (where, field) in _path_like_fields(roots)
        if field.marker is None and name not in NOT_PATHS
    ]


REQUEST_ROOTS = {kind.value: model for kind, model in REQUEST_MODELS.items()}


def test_every_field_that_looks_like_a_path_is_marked() -> None:
    unmarked = _unmarked(REQUEST_ROOTS)
    assert not unmarked, (
        "these fields look like paths but carry no path marker: type them with a path type of "
        f"finetuning.config.paths (ModelPath, DataFile, ...), or add them to NOT_PATHS with the reason: {unmarked}"
    )


def test_the_guard_catches_a_forgotten_marker() -> None:
    class Section(BaseModel):
        weights_path: str | None = None  # forgotten
        tokenizer: ModelPath = "t"
        eval_files: list[str] = Field(default_factory=list)  # forgotten, in a list

    class Root(BaseModel):
        section: Section

    assert _unmarked({"new": Root}) == [
        "new: section.eval_files (Section.eval_files)",
        "new: section.weights_path (Section.weights_path)",
    ]


def test_the_exceptions_are_still_needed() -> None:
    """An exception whose field was renamed, removed or marked is dropped from NOT_PATHS."""
    names = {name for _, name, (_, field) in _path_like_fields(REQUEST_ROOTS) if field.marker is None}
    assert set(NOT_PATHS) <= names, set(NOT_PATHS) - names


def test_the_guard_sees_the_fields_it_should() -> None:
    """The guard's pattern itself: it catches the shapes of path names it promises to."""
    for name in ("model", "base_model", "tokenizer", "adapter", "data_path", "output_dir", "cache_dir", "vocab_file"):
        assert PATH_LIKE_NAME.search(name), name
    for name in ("offload_folder", "resume_from_checkpoint", "final_checkpoint_name", "save_name_if_new_basemodel"):
        assert PATH_LIKE_NAME.search(name), name
    for name in ("mlflow_server_uri", "fsdp_config", "deepspeed", "name_or_path", "path"):
        assert PATH_LIKE_NAME.search(name), name
    for name in ("learning_rate", "run_name", "experiment_name", "activation_checkpointing_kwargs"):
        assert not PATH_LIKE_NAME.search(name), name


# ---------------------------------------------------------------- the marker in the schema and in a config


def test_the_marker_is_in_the_json_schema() -> None:
    defs = SFTConfig.model_json_schema()["$defs"]
    model = defs["RunConf"]["properties"]["model"]
    assert model["x-path"] == {"target": "dir", "use": "input", "hub_id": True, "job_output": True}
    resume = defs["RunConf"]["properties"]["resume_from_checkpoint"]["anyOf"]
    assert {"type": "boolean"} in resume
    assert any(member.get("x-path", {}).get("not_paths") == ["auto", "true", "false"] for member in resume)
    assert defs["DatasetRef"]["properties"]["path"]["x-path"] == {"target": "file", "use": "input", "job_output": True}


def test_path_fields_of_a_generate_config() -> None:
    config = GenerateConfig.validate_config(
        {
            "model_conf": {"model": "org/model", "adapter": "job:" + "0" * 36},
            "prompt_conf": {"type": "eval-data", "data": {"path": "eval.jsonl"}},
        }
    )
    found = {field.loc: field.value for field in path_fields(config) if not field.unset}
    assert found == {
        "model_conf.model": "org/model",
        "model_conf.adapter": "job:" + "0" * 36,
        "prompt_conf.data.path": "eval.jsonl",
    }
