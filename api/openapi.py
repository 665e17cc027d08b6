"""The engine's config classes as OpenAPI request bodies (JSON and YAML), so the document shows the YAML format.

Submission routes read the raw body (it may be YAML), so FastAPI cannot derive their body schema; the schemas are
generated here from the same pydantic classes and added to ``components.schemas``.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from api.jobkinds import REQUEST_MODELS
from jobcore.models import JobKind

REF_TEMPLATE = "#/components/schemas/{model}"
ERROR_SCHEMA_REF = "#/components/schemas/ErrorResponse"
# Free-form JSON array items of a response, named so generated clients get a class named after what they hold
# (not ``GetJobOutputResponse200Item``): operation id -> (component name, description).
RESPONSE_ITEMS = {
    "get_job_output": (
        "GeneratedAnswer",
        "One answer of a generate job: `prompt` (as rendered), `answer` (the new tokens), `correct_answers`, "
        "`dataset`, `id`, `truncated`, `all_text_raw` and the `gen_params` in force.",
    ),
}


@lru_cache
def _config_schemas() -> tuple[dict[JobKind, dict[str, Any]], dict[str, Any]]:
    kinds = list(REQUEST_MODELS)
    refs, top = models_json_schema([(REQUEST_MODELS[k], "validation") for k in kinds], ref_template=REF_TEMPLATE)
    by_kind = {kind: refs[(REQUEST_MODELS[kind], "validation")] for kind in kinds}
    return by_kind, top.get("$defs", {})


def request_body(kind: JobKind, *, optional: bool = False) -> dict[str, Any]:
    """``openapi_extra`` for a submission route: the kind's config as JSON or YAML (``optional``: left out when the
    config comes from elsewhere, ``from_manifest``)."""
    ref = _config_schemas()[0][kind]
    optional_note = " Required, except with `from_manifest` (which takes none)." if optional else ""
    return {
        "requestBody": {
            "required": not optional,
            "description": "The job's config, exactly the engine's YAML format: as JSON, or as YAML with "
            "`Content-Type: application/yaml` (an existing config file can be posted as is)." + optional_note,
            "content": {"application/json": {"schema": ref}, "application/yaml": {"schema": ref}},
        }
    }


def install_openapi(app: FastAPI, tags: list[dict[str, Any]]) -> None:
    """Generate the document once, with the config schemas merged into its components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=tags,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in _config_schemas()[1].items():
            if name in components and components[name] != definition:
                raise RuntimeError(f"OpenAPI schema name clash: {name}")
            components[name] = copy.deepcopy(definition)
        _errors_as_json(schema)
        _name_response_items(schema, components)
        for definition in components.values():
            _name_union_members(definition)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


# ---------------------------------------------------------------- for client generators
# Small fixes that make generated clients (openapi-python-client, openapi-generator) read naturally; they change
# names and media types in the document only, never what the API accepts or answers.


def _errors_as_json(schema: dict[str, Any]) -> None:
    """Error answers are always the JSON envelope, also on routes whose success is text (FastAPI lists them under
    the route's own media type, e.g. ``text/plain`` for the log)."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if not str(status).isdigit() or int(status) < 400 or "application/json" in content:
                    continue
                for media_type in list(content):
                    if content[media_type].get("schema", {}).get("$ref") == ERROR_SCHEMA_REF:
                        content["application/json"] = content.pop(media_type)


def _name_response_items(schema: dict[str, Any], components: dict[str, Any]) -> None:
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            named = RESPONSE_ITEMS.get(operation.get("operationId", ""))
            if named is None:
                continue
            name, description = named
            array = operation["responses"]["200"]["content"]["application/json"]["schema"]
            components[name] = {**array["items"], "title": name, "description": description}
            array["items"] = {"$ref": f"#/components/schemas/{name}"}


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _name_union_members(definition: dict[str, Any]) -> None:
    """Title the inline object (and enum-array) members of a field's ``anyOf``, e.g. ``accelerator_config: dict |
    str | None``, after the field: generated classes become ``SFTTrainingArgsAcceleratorConfig`` instead of
    ``SFTTrainingArgsAcceleratorConfigType0``. Titles are annotations: validation is unchanged."""
    for field, prop in definition.get("properties", {}).items():
        for member in [*prop.get("anyOf", []), *prop.get("oneOf", [])]:
            if "$ref" in member or "title" in member:
                continue
            if member.get("type") == "object":
                member["title"] = _pascal(field)
            elif member.get("type") == "array" and "enum" in member.get("items", {}):
                member["items"].setdefault("title", f"{_pascal(field)}Option")
