"""Hypothesis over the config parser: the engine's schema (SFTConfig, DPOConfig, GenerateConfig) and the API's other
request models, through the doors that read them: ``validate_config`` (a dict: the API's JSON body, the worker's
config), ``from_yaml`` / ``from_yaml_file`` (the CLI), and the API's ``parse_body`` + ``validate_config``.

Property: any input either validates or raises the project's own error (``ConfigError``; ``ApiError`` 415/422 at
the API), never another exception; and every issue names where it is (a field path, or the document itself when
the document is not a mapping or is not YAML at all).

``FUZZ_PROFILE=full`` (``make fuzz``) runs many more examples than the default profile.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from api.errors import ApiError
from api.jobkinds import REQUEST_MODELS
from api.resolve import parse_body
from api.resolve import validate_config as api_validate_config
from finetuning.config import ConfigError, DPOConfig, GenerateConfig, SFTConfig, StrictModel
from jobcore.models import JobKind

settings.register_profile(
    "config-fuzz", max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "config-fuzz-full", max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
PROFILE = settings.get_profile("config-fuzz-full" if os.environ.get("FUZZ_PROFILE") == "full" else "config-fuzz")

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "configs"
CLASSES: list[type[StrictModel]] = [SFTConfig, DPOConfig, GenerateConfig, *REQUEST_MODELS.values()]
CLASSES = list(dict.fromkeys(CLASSES))  # REQUEST_MODELS repeats the engine's three


def _valid_configs() -> list[tuple[type[StrictModel], dict[str, Any]]]:
    configs: list[tuple[type[StrictModel], dict[str, Any]]] = [
        (SFTConfig, yaml.safe_load((ASSETS / "sft.yaml").read_text())),
        (SFTConfig, yaml.safe_load((ASSETS / "sft-original-full.yaml").read_text())),
        (DPOConfig, yaml.safe_load((ASSETS / "dpo.yaml").read_text())),
        (GenerateConfig, yaml.safe_load((ASSETS / "generate.yaml").read_text())),
        (REQUEST_MODELS[JobKind.MERGE], {"base_model": "org/base", "adapter": "out/adapter", "device_map": "cpu"}),
        (REQUEST_MODELS[JobKind.ADAPTER_CONVERSION], {"adapter": "out/adapter"}),
    ]
    for cls, data in configs:
        cls.validate_config(data)  # the seeds themselves are valid
    return configs


VALID = _valid_configs()


def _field_names(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set[str]:
    """Every key the schema knows (names and aliases, all sections): near misses come from these."""
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    names: set[str] = set()
    for name, info in model.model_fields.items():
        names.update(filter(None, (name, info.alias)))
        stack = [info.annotation]
        while stack:
            tp = stack.pop()
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                names |= _field_names(tp, seen)
            elif get_origin(tp) is not None:
                stack.extend(get_args(tp))
    return names


KNOWN_KEYS = sorted(set().union(*(_field_names(cls) for cls in CLASSES)))
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=12))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and infinities included
    st.text(max_size=20),
    st.sampled_from(["auto", "LORA", "NO_PEFT", "CONCATENATION", "NONE", "sigmoid", "kto", "open-input", "1e-4"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)),
    max_leaves=25,
)
wrong_types = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.builds(list),
    st.builds(dict),
    st.builds(lambda: [1]),  # fresh objects: mutations change them
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location in a config: dict keys and list indexes, outermost first."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


@st.composite
def mutated_configs(draw: st.DrawFn) -> tuple[type[StrictModel], Any]:
    """A valid config with 1-4 mutations: a key dropped, added, renamed (near miss), or a value of the wrong type
    or an arbitrary JSON value at a valid path."""
    cls, seed = draw(st.sampled_from(VALID))
    data = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        parent_path, last = path[:-1], path[-1] if path else None
        action = draw(st.sampled_from(["drop", "add", "rename", "wrong_type", "arbitrary"]))
        if not path:
            if action in ("wrong_type", "arbitrary"):
                data = draw(wrong_types if action == "wrong_type" else json_values)
            continue
        parent = _get(data, parent_path)
        if action == "drop":
            del parent[last]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(keys)] = draw(json_values)
        elif action == "rename" and isinstance(parent, dict):
            key = str(last)
            new = draw(st.sampled_from([key + "s", key[:-1], key.upper(), key.replace("_", "-"), "_" + key]))
            parent[new] = parent.pop(last)
        else:
            parent[last] = draw(wrong_types if action == "wrong_type" else json_values)
        if not isinstance(data, dict | list):
            break
    return cls, data


TOP_LEVEL_KEYS = sorted({info.alias or name for cls in CLASSES for name, info in cls.model_fields.items()})
PATH_IN_MESSAGE = re.compile(r"[a-z_]+\.[a-z_]+")


def _check_error(exc: ConfigError, data: Any) -> None:
    assert exc.issues, "a ConfigError lists its issues"
    for issue in exc.issues:
        assert isinstance(issue.loc, str)
        assert issue.message
        if not isinstance(data, dict):
            continue  # the document itself is at fault: its path is the root
        # a field path, or (a rule across sections, checked on the whole config) a message naming the fields
        # (an empty key at the top has the empty path: its message names it)
        assert issue.loc or PATH_IN_MESSAGE.search(issue.message) or "unknown key ''" in issue.message, issue
        if issue.loc:
            # the path starts at a key of the document (a missing field names where it belongs)
            tops = [str(key) for key in data] + TOP_LEVEL_KEYS
            assert any(issue.loc == top or issue.loc.startswith((f"{top}.", f"{top}[")) for top in tops), issue
            assert issue.loc in str(exc)


def _error_of(call: Callable[[], Any], error: type[Exception] = ConfigError) -> Any:
    """The project's error ``call`` raised, or None; any other exception fails the test."""
    try:
        call()
    except error as exc:
        return exc
    return None


def _validates_or_config_error(cls: type[StrictModel], data: Any) -> None:
    exc = _error_of(lambda: cls.validate_config(data))
    if exc is not None:
        _check_error(exc, data)


@settings(PROFILE)
@given(cls=st.sampled_from(CLASSES), data=json_values)
def test_arbitrary_values_validate_or_raise_config_errors(cls: type[StrictModel], data: Any) -> None:
    _validates_or_config_error(cls, data)


@settings(PROFILE)
@given(cls=st.sampled_from(CLASSES), data=st.dictionaries(st.sampled_from(KNOWN_KEYS), json_values, max_size=8))
def test_known_sections_with_arbitrary_contents(cls: type[StrictModel], data: dict[str, Any]) -> None:
    _validates_or_config_error(cls, data)


@settings(PROFILE)
@given(case=mutated_configs())
def test_mutated_valid_configs(case: tuple[type[StrictModel], Any]) -> None:
    _validates_or_config_error(*case)


YAML_TOKENS = st.sampled_from(
    [
        *(":", ": ", "- ", "\n", "\n  ", "[", "]", "{", "}", ",", "? ", "|", ">", "'", '"', "#", "\t", "..."),
        *("&a ", "*a", "*b", "<<: *a", "%YAML 1.1\n", "---\n", "\x00", "\ufeff", "~", "null", "yes"),
        *("!!python/object:os.system ", "!!binary ", "!!int ", "!!bool ", "!!float ", "!!timestamp ", "!!set "),
        *("2024-13-45", "0000-01-01", "1e400", "0x1F", ".nan"),
        *("data_conf", "training_args", "run_conf", "model", "peft_conf", "LORA", "datasets", "path"),
    ]
)
yaml_texts = st.one_of(
    st.text(max_size=80),
    st.lists(st.one_of(YAML_TOKENS, st.text(max_size=4)), max_size=30).map("".join),
    st.builds(lambda doc: yaml.safe_dump(doc), json_values),
)


@settings(PROFILE)
@given(cls=st.sampled_from([SFTConfig, DPOConfig, GenerateConfig]), text=yaml_texts)
@example(cls=SFTConfig, text="a: 2024-13-45")  # ValueError from PyYAML's date constructor
@example(cls=SFTConfig, text="!!int ")  # IndexError
@example(cls=SFTConfig, text="a: !!bool ")  # KeyError
@example(cls=SFTConfig, text="a: !!timestamp x")  # AttributeError
@example(cls=SFTConfig, text="[" * 5000)  # nesting deeper than the parser's stack
def test_yaml_text_parses_or_raises_config_errors(cls: type[StrictModel], text: str) -> None:
    exc = _error_of(lambda: cls.from_yaml(text))
    assert exc is None or (exc.issues and all(issue.message for issue in exc.issues))


@settings(PROFILE, max_examples=max(10, PROFILE.max_examples // 4))
@given(raw=st.one_of(st.binary(max_size=60), yaml_texts.map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_cli_config_files_parse_or_raise_config_errors(raw: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_bytes(raw)
    exc = _error_of(lambda: SFTConfig.from_yaml_file(path))
    assert exc is None or exc.issues


@settings(PROFILE)
@example(kind=JobKind.SFT, body=b"!!int ", content_type="application/yaml")  # was a 500 (IndexError)
@example(kind=JobKind.SFT, body=b"a: !!bool ", content_type="application/yaml")  # was a 500 (KeyError)
@example(kind=JobKind.SFT, body=b"a: !!timestamp x", content_type="application/yaml")  # was a 500
@given(
    kind=st.sampled_from(list(JobKind)),
    body=st.one_of(yaml_texts.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=40)),
    content_type=st.sampled_from(["application/json", "application/yaml", "text/yaml", None, "text/plain"]),
)
def test_api_body_parses_or_answers_415_or_422(kind: JobKind, body: bytes, content_type: str | None) -> None:
    exc = _error_of(lambda: api_validate_config(kind, parse_body(body, content_type)), ApiError)
    assert exc is None or (exc.status_code in (415, 422) and exc.message), exc
