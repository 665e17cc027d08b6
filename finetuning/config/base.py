"""The strict base model every config section builds on, and errors that name the field path.

Unknown keys are errors; the error names the full path of the key (``data_conf.training_data.datasets[0].pth``),
suggests the closest known key, and, for keys that existed in the original engine or in older transformers releases,
names what replaced them.
"""

from __future__ import annotations

import difflib
import logging
import os
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any, ClassVar, Self, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError
from pydantic.fields import FieldInfo

from finetuning.config import safe_yaml
from finetuning.config.legacy import Upgrade, collect_upgrades
from finetuning.contract import SECRET_ENV_PREFIX
from finetuning.redaction import secrets_from_environment

logger = logging.getLogger(__name__)


class StrictModel(BaseModel):
    """A config section: unknown keys are rejected; ``replaced_keys`` maps retired keys to what replaced them."""

    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)

    # key -> message saying what replaced it (or why the user cannot set it). Checked by the error formatter.
    replaced_keys: ClassVar[Mapping[str, str]] = {}

    _upgrades: list[Upgrade] = PrivateAttr(default_factory=list)

    def __eq__(self, other: object) -> bool:
        # how a config was read (its upgrade notes) is not part of the config
        if not isinstance(other, BaseModel):
            return NotImplemented
        return (
            type(self) is type(other)
            and self.__dict__ == other.__dict__
            and self.__pydantic_extra__ == other.__pydantic_extra__
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like every pydantic model

    @property
    def upgrades(self) -> list[Upgrade]:
        """The retired fields of older libraries that :meth:`validate_config` translated, one note each."""
        return list(self._upgrades)

    def startup_problems(self) -> list[ConfigIssue]:
        """What would stop the run at its start although each field is valid on its own (a config section that
        starts a run overrides this): found at validation, before anything is queued or loaded."""
        return []

    @classmethod
    def from_yaml(
        cls, stream: str | bytes | IO[str] | IO[bytes], *, source: str = "the config", secrets: bool = False
    ) -> Self:
        """Validate a YAML document (text or open file) as this config; unreadable YAML, and a document that its
        aliases expand beyond any config's size (:mod:`finetuning.config.safe_yaml`), is a :class:`ConfigError`.
        Each retired field translated to today's spelling is logged as a warning. ``secrets``: fill each
        ``${secrets.NAME}`` from the environment (:data:`finetuning.contract.SECRET_ENV_PREFIX`)."""
        try:
            data = safe_yaml.safe_load(stream)
        except safe_yaml.YAMLExpansionError as exc:
            raise ConfigError([ConfigIssue("", f"{source} is refused: {exc}")]) from None
        except Exception as exc:
            # PyYAML's safe loader raises more than YAMLError on bad input: ValueError (2024-13-45, bytes that are
            # not UTF-8), IndexError ('!!int '), KeyError ('!!bool '), AttributeError ('!!timestamp x'); and
            # RecursionError for nesting deeper than its stack. It only builds plain data: any error is bad input.
            raise ConfigError([ConfigIssue("", f"{source} is not valid YAML: {exc}")]) from None
        if secrets:
            try:
                # the names are the config's own, so no settings class can list them: the environment is read here
                data = secrets_from_environment(data, os.environ, SECRET_ENV_PREFIX)
            except KeyError as exc:
                loc, _, message = str(exc.args[0]).partition(": ")
                raise ConfigError([ConfigIssue(loc, message)]) from None
        config = cls.validate_config({} if data is None else data)
        for note in config.upgrades:
            logger.warning("%s: %s", source, note)
        return config

    @classmethod
    def from_yaml_file(cls, path: str | Path) -> Self:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError([ConfigIssue("", f"config file not found: {path}")]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([ConfigIssue("", f"cannot read the config file {path}: {exc}")]) from None
        return cls.from_yaml(text, source=str(path), secrets=True)

    @classmethod
    def validate_config(cls, data: Any) -> Self:
        """Like ``model_validate`` but raises :class:`ConfigError`, whose issues name paths and near misses; also
        refuses a config that could not start (:meth:`startup_problems`). Fields of older libraries are read in
        today's spelling (:mod:`finetuning.config.legacy`); :attr:`upgrades` lists them."""
        with collect_upgrades() as notes:
            try:
                config = cls.model_validate(data)
            except ValidationError as exc:
                raise ConfigError.from_validation_error(cls, exc) from None
        problems = config.startup_problems()
        if problems:
            raise ConfigError(problems)
        config._upgrades = notes
        return config

    def to_yaml(self, *, exclude_unset: bool = False) -> str:
        data = self.model_dump(mode="json", exclude_unset=exclude_unset, by_alias=True)
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config: where (dotted path, ``""`` for the document) and what."""

    loc: str
    message: str

    def __str__(self) -> str:
        return f"{self.loc}: {self.message}" if self.loc else self.message


class ConfigError(ValueError):
    """A config failed validation. ``issues`` lists every problem found, each with its field path."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        lines = "\n".join(f"  - {issue}" for issue in issues)
        super().__init__(f"invalid config ({len(issues)} problem{'s' if len(issues) != 1 else ''}):\n{lines}")

    @classmethod
    def from_validation_error(cls, root: type[BaseModel], exc: ValidationError) -> ConfigError:
        # a value failing every member of a union gives one error per member: report them as one issue
        merged: dict[str, list[str]] = {}
        for err in exc.errors(include_url=False):
            issue = _issue_from_error(root, err)
            messages = merged.setdefault(issue.loc, [])
            if issue.message not in messages:
                messages.append(issue.message)
        return cls([ConfigIssue(loc, " or ".join(messages)) for loc, messages in merged.items()])


def format_loc(parts: list[str | int]) -> str:
    """``["a", "b", 0, "c"]`` -> ``a.b[0].c``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _issue_from_error(root: type[BaseModel], err: Mapping[str, Any]) -> ConfigIssue:
    loc: tuple[str | int, ...] = tuple(err["loc"])
    parts, owner = _resolve_loc(root, loc)
    message = str(err["msg"])
    if err["type"] == "extra_forbidden" and parts:
        key = str(parts[-1])
        message = _unknown_key_message(owner, key)
    elif err["type"] == "missing":
        message = "required field is missing"
    return ConfigIssue(format_loc(parts), message)


def _unknown_key_message(owner: type[BaseModel] | None, key: str) -> str:
    if owner is None:
        return f"unknown key '{key}'"
    replaced = getattr(owner, "replaced_keys", {})
    if key in replaced:
        return f"'{key}' is not accepted here: {replaced[key]}"
    known = sorted(_field_names(owner))
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(known)}"
    return f"unknown key '{key}'{hint}"


def _field_names(model: type[BaseModel]) -> Iterator[str]:
    for name, info in model.model_fields.items():
        yield info.alias or name


def _resolve_loc(root: type[BaseModel], loc: tuple[str | int, ...]) -> tuple[list[str | int], type[BaseModel] | None]:
    """Walk ``loc`` through the schema: drop union tags pydantic puts in locs, and find the model owning the last key.

    Returns the cleaned path and the model class that the last element is a key of (None if unknown).
    """
    parts: list[str | int] = []
    current: Any = root
    owner: type[BaseModel] | None = None
    i = 0
    while i < len(loc):
        element = loc[i]
        current = _unwrap(current)
        if _is_union(current):
            member = _pick_union_member(current, element, loc[i + 1 :])
            if member is None:
                parts.extend(loc[i:])
                return parts, None
            current, consumed = member
            i += consumed
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            owner = current
            parts.append(element)
            field = _field_by_key(current, str(element))
            current = field.annotation if field is not None else None
        elif get_origin(current) in (list, tuple, set, frozenset) or current in (list, tuple):
            parts.append(element)
            args = get_args(current)
            current = args[0] if args else None
        elif get_origin(current) is dict or current is dict:
            parts.append(element)
            args = get_args(current)
            current = args[1] if len(args) == 2 else None
        else:
            # a scalar with a nested loc: pydantic names the failing union branch (e.g. 'str', 'list[str]')
            if not parts or element in ("function-after", "function-before", "function-plain", "function-wrap"):
                parts.append(element)
            return parts, owner
        i += 1
    return parts, owner


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _pick_union_member(tp: Any, element: str | int, rest: tuple[str | int, ...]) -> tuple[Any, int] | None:
    """Choose the union member a loc goes into; returns (member, loc elements consumed by the tag)."""
    members = [_unwrap(m) for m in get_args(tp) if m is not type(None)]
    models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
    for model in models:
        if element in _tag_values(model):
            return model, 1
    if isinstance(element, str):
        # pydantic names a failing non-discriminated member by its type (e.g. 'list[str]', 'MyModel')
        for member in members:
            if element == getattr(member, "__name__", None) or element == _type_repr(member):
                return member, 1
    if len(members) == 1:
        return members[0], 0
    for model in models:
        if isinstance(element, str) and _field_by_key(model, element) is not None:
            return model, 0
    return None


def _type_repr(tp: Any) -> str:
    return typing._type_repr(tp) if hasattr(typing, "_type_repr") else repr(tp)


def _tag_values(model: type[BaseModel]) -> set[Any]:
    """The literal values a model's tag fields accept: pydantic puts the matched tag in error locs."""
    values: set[Any] = set()
    for info in model.model_fields.values():
        annotation = _unwrap(info.annotation)
        if get_origin(annotation) is typing.Literal:
            values.update(getattr(v, "value", v) for v in get_args(annotation))
    return values


def _field_by_key(model: type[BaseModel], key: str) -> FieldInfo | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None
