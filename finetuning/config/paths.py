"""Fields that name files or folders, marked in the schema itself, and the walker that finds them.

A config field whose string names something on disk is typed with one of the aliases below (``ModelPath``,
``DataFile``, ...): ``Annotated[str, PathMarker(...)]``. The marker says what the name is (a file, a folder, a URI)
and how it is used (read, written, inside another folder, or a place the service chooses), so the service can
confine every such field without a list of its own: :func:`path_fields` walks a validated config (nested models,
lists, dicts and unions, discriminated or not) and yields each marked value with its dotted location. The marker also
appears in the JSON schema (and so in the API's OpenAPI document) as ``x-path``.

The engine itself gives the marker no meaning: a YAML file run with the CLI may name any path its user can read.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, GetJsonSchemaHandler
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

PathTarget = Literal["file", "dir", "uri"]
PathUse = Literal["input", "output", "inside", "service"]


@dataclass(frozen=True)
class PathMarker:
    """What a string field names, and how a job uses it.

    ``target``: a ``file``, a ``dir`` (folder), or a ``uri`` that may name a local store.
    ``use``:
      - ``input``: read by the job; the service accepts it only under its allowed roots;
      - ``output``: written by the job; the service replaces it with the job's own folder;
      - ``inside``: a relative name inside another folder (``within``), e.g. a checkpoint's folder name;
      - ``service``: a place the service chooses itself (a cache, an offload folder, a local tracking store).
    ``hub_id``: the value may be a hub id (``org/name``) instead of a path.
    ``job_output``: the value may be ``job:<id>[/<artifact>]``, an earlier job's output.
    ``not_paths``: values (compared without case) that are settings rather than paths, e.g. ``auto``.
    """

    target: PathTarget
    use: PathUse = "input"
    hub_id: bool = False
    job_output: bool = False
    not_paths: tuple[str, ...] = ()
    within: str = ""

    def is_path(self, value: str) -> bool:
        return value.lower() not in self.not_paths

    def json_schema(self) -> dict[str, Any]:
        """The marker as the schema's ``x-path``: only what differs from a plain input path is spelled out."""
        out: dict[str, Any] = {"target": self.target, "use": self.use}
        if self.hub_id:
            out["hub_id"] = True
        if self.job_output:
            out["job_output"] = True
        if self.not_paths:
            out["not_paths"] = list(self.not_paths)
        if self.within:
            out["within"] = self.within
        return out

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["x-path"] = self.json_schema()
        return schema


# The path types of the schema: every field naming a file or folder uses one of them (a test finds unmarked ones).
ModelPath = Annotated[str, PathMarker("dir", hub_id=True, job_output=True)]
"""A model, adapter or tokenizer: a folder, a hub id, or ``job:<id>[/<artifact>]``."""
DataFile = Annotated[str, PathMarker("file", job_output=True)]
"""A data file (JSONL or a JSON array), or ``job:<id>[/<artifact>]``."""
CheckpointDir = Annotated[str, PathMarker("dir", not_paths=("auto", "true", "false"))]
"""A checkpoint folder to resume from (``auto``, ``true`` and ``false`` are settings, not folders)."""
ConfigFile = Annotated[str, PathMarker("file")]
"""A JSON file the engine reads its settings from (DeepSpeed, FSDP, accelerate)."""
OutputDir = Annotated[str, PathMarker("dir", use="output")]
"""The folder a run writes its checkpoints and results to."""
OutputName = Annotated[str, PathMarker("dir", use="inside", within="output_dir")]
"""A folder the run writes inside its output folder."""
ModelSubfolder = Annotated[str, PathMarker("dir", use="inside", within="the model")]
"""A folder inside the model's folder (or hub repository)."""
ServiceDir = Annotated[str, PathMarker("dir", use="service")]
"""A folder the loader writes to (a download cache, an offload folder)."""
TrackingUri = Annotated[str, PathMarker("uri", use="service")]
"""A tracking server's address, or a local store (a folder, a SQLite file)."""


@dataclass(frozen=True)
class PathField:
    """A marked field of a validated config: its dotted location, its value (None when unset), its marker, whether
    the config set it explicitly, and whether its type accepts None (an optional path: the engine reads an empty
    one as unset too, e.g. ``tokenizer or model``)."""

    loc: str
    value: str | None
    marker: PathMarker
    explicit: bool
    optional: bool

    @property
    def unset(self) -> bool:
        return self.value is None or (self.optional and self.value == "")


def path_fields(config: BaseModel) -> Iterator[PathField]:
    """Every marked field of ``config``, in schema order. A string (or None) value is yielded where the field's
    type has a marked ``str`` member; nested models are walked as the class they were validated to, so the member
    of a union (discriminated or not) that holds the value decides which fields there are."""
    yield from _walk_model(config, "")


def _walk_model(model: BaseModel, loc: str) -> Iterator[PathField]:
    for name, info in type(model).model_fields.items():
        key = info.alias or name
        child = f"{loc}.{key}" if loc else key
        explicit = name in model.model_fields_set
        yield from _walk(_field_type(info), getattr(model, name), child, explicit)


def _walk(tp: Any, value: Any, loc: str, explicit: bool) -> Iterator[PathField]:
    if value is None or isinstance(value, str):
        marker = text_marker(tp, loc)
        if marker is not None:
            optional = any(_bare(member) is type(None) for member in _members(tp))
            yield PathField(loc, value, marker, explicit, optional)
    elif isinstance(value, BaseModel):
        yield from _walk_model(value, loc)
    elif isinstance(value, list | tuple | set | frozenset):
        items = _container_args(tp, (list, tuple, set, frozenset))
        fixed = len(items) > 1 and items[-1] is not Ellipsis  # tuple[A, B]: a type per position
        for i, item in enumerate(value):
            item_tp = (items[i] if i < len(items) else Any) if fixed else items[0]
            yield from _walk(item_tp, item, f"{loc}[{i}]", explicit)
    elif isinstance(value, dict):
        args = _container_args(tp, (dict,))
        value_tp = args[1] if len(args) == 2 else Any
        for key, item in value.items():
            yield from _walk(value_tp, item, f"{loc}.{key}", explicit)


def text_marker(tp: Any, loc: str = "") -> PathMarker | None:
    """The marker of the ``str`` member of ``tp`` (``ModelPath``, ``ModelPath | None``, ``bool | CheckpointDir``),
    or None when no ``str`` member of it is marked."""
    markers = {m for member in _members(tp) for m in _markers(member) if _bare(member) is str}
    if len(markers) > 1:
        raise TypeError(f"{loc or tp}: more than one path marker on its string members")
    return next(iter(markers), None)


def set_field(data: dict[str, Any], loc: str, value: Any) -> None:
    """Set ``data`` at a dotted location such as ``data_conf.training_data.datasets[0].path``; a section missing
    from ``data`` (left to its defaults) is added."""
    parts = [p for p in re.split(r"\.|\[(\d+)\]", loc) if p]
    target: Any = data
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target.setdefault(part, {})
    last = parts[-1]
    if last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value


# ---------------------------------------------------------------- the schema, without a config


@dataclass(frozen=True)
class SchemaField:
    """A field of a config class, reached from the root: its location (``[]`` for any list index, ``{}`` for any
    dict key), the class that declares it, its name, its type and the marker of the strings it holds, itself or as
    the items of a list or dict (None when unmarked)."""

    loc: str
    owner: type[BaseModel]
    name: str
    annotation: Any
    marker: PathMarker | None

    def accepts_text(self) -> bool:
        """Whether the field holds strings: itself, or as the items of a list or dict."""
        return any(True for _ in _text_positions(self.annotation, ""))


def schema_fields(root: type[BaseModel]) -> Iterator[SchemaField]:
    """Every field of ``root`` and of the models it nests (through unions, lists and dicts), once per location.
    A marker on anything but a ``str`` (e.g. on a list) is a schema error: the walker would not see it."""
    seen: set[tuple[str, type[BaseModel], str]] = set()
    for field in _schema_walk(root, "", ()):
        if (field.loc, field.owner, field.name) not in seen:
            seen.add((field.loc, field.owner, field.name))
            yield field


def marked_fields(root: type[BaseModel]) -> Iterator[SchemaField]:
    """Where ``root`` (and the models it nests) holds marked strings: a marked field, or the items of a list or dict
    of marked strings (``extra_files[]``)."""
    for field in schema_fields(root):
        for suffix, marker in _text_positions(field.annotation, field.loc):
            if marker is not None:
                yield SchemaField(field.loc + suffix, field.owner, field.name, field.annotation, marker)


def _schema_walk(model: type[BaseModel], loc: str, seen: tuple[type[BaseModel], ...]) -> Iterator[SchemaField]:
    if model in seen:  # a recursive model: each class once per branch
        return
    for name, info in model.model_fields.items():
        key = info.alias or name
        child = f"{loc}.{key}" if loc else key
        tp = _field_type(info)
        _check_markers(tp, child)
        marker = next((m for _, m in _text_positions(tp, child) if m is not None), None)
        yield SchemaField(child, model, name, tp, marker)
        yield from _schema_nested(tp, child, (*seen, model))


def _schema_nested(tp: Any, loc: str, seen: tuple[type[BaseModel], ...]) -> Iterator[SchemaField]:
    for member in _members(tp):
        bare = _bare(member)
        if isinstance(bare, type) and issubclass(bare, BaseModel):
            yield from _schema_walk(bare, loc, seen)
            continue
        origin, args = get_origin(bare), get_args(bare)
        if origin in (list, tuple, set, frozenset):
            for arg in args:
                if arg is not Ellipsis:
                    yield from _schema_nested(arg, f"{loc}[]", seen)
        elif origin is dict and len(args) == 2:
            yield from _schema_nested(args[1], f"{loc}.{{}}", seen)


def _text_positions(tp: Any, loc: str) -> Iterator[tuple[str, PathMarker | None]]:
    """Where ``tp`` holds strings, as a suffix of its location (``""`` itself, ``[]`` an item, ``.{}`` a dict
    value), each with its marker; models are not entered (they are fields of their own)."""
    if any(_bare(member) is str for member in _members(tp)):
        yield "", text_marker(tp, loc)
    for member in _members(tp):
        bare = _bare(member)
        origin, args = get_origin(bare), get_args(bare)
        if origin in (list, tuple, set, frozenset):
            for arg in [a for i, a in enumerate(args) if a is not Ellipsis and a not in args[:i]]:
                for suffix, marker in _text_positions(arg, f"{loc}[]"):
                    yield "[]" + suffix, marker
        elif origin is dict and len(args) == 2:
            for suffix, marker in _text_positions(args[1], f"{loc}.{{}}"):
                yield ".{}" + suffix, marker


def _check_markers(tp: Any, loc: str) -> None:
    """A marker must sit on a ``str``: on a list or a model the walker, which looks at strings, would miss it."""
    for member in _members(tp):
        if _markers(member) and _bare(member) is not str:
            raise TypeError(f"{loc}: a path marker annotates {_bare(member)!r}; mark the str that names the path")
        origin, args = get_origin(_bare(member)), get_args(_bare(member))
        if origin in (list, tuple, set, frozenset, dict):
            for arg in args:
                if arg is not Ellipsis:
                    _check_markers(arg, loc)


# ---------------------------------------------------------------- typing helpers


def _field_type(info: FieldInfo) -> Any:
    """The field's type with the metadata pydantic lifted out of a top-level ``Annotated`` put back."""
    return Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation


def _members(tp: Any) -> list[Any]:
    """The members of a union (each still ``Annotated``), flattened; a non-union is its own only member. Metadata
    on an ``Annotated`` union (``Annotated[str | None, marker]``) is copied onto each member but None."""
    outer: tuple[Any, ...] = ()
    while get_origin(tp) is Annotated:
        outer += tp.__metadata__
        tp = get_args(tp)[0]
    if get_origin(tp) in (Union, types.UnionType):
        members = [m for arg in get_args(tp) for m in _members(arg)]
    else:
        members = [tp]
    return [Annotated[(m, *outer)] if outer and m is not type(None) else m for m in members]


def _markers(tp: Any) -> list[PathMarker]:
    found: list[PathMarker] = []
    while get_origin(tp) is Annotated:
        found += [m for m in tp.__metadata__ if isinstance(m, PathMarker)]
        tp = get_args(tp)[0]
    return found


def _bare(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _container_args(tp: Any, origins: tuple[type, ...]) -> tuple[Any, ...]:
    """The type arguments of the member of ``tp`` that is one of ``origins`` (``(Any,)`` when there is none)."""
    for member in _members(tp):
        bare = _bare(member)
        if get_origin(bare) in origins and get_args(bare):
            return get_args(bare)
        if bare in origins:
            break
    return (Any,)


__all__ = [
    "CheckpointDir",
    "ConfigFile",
    "DataFile",
    "ModelPath",
    "ModelSubfolder",
    "OutputDir",
    "OutputName",
    "PathField",
    "PathMarker",
    "SchemaField",
    "ServiceDir",
    "TrackingUri",
    "marked_fields",
    "path_fields",
    "schema_fields",
    "set_field",
    "text_marker",
]
