"""The engine's config classes as OpenAPI request bodies (JSON and YAML), so the document shows the YAML format.

Submission routes read the raw body (it may be YAML), so FastAPI cannot derive their body schema; the schemas are
generated here from the same pydantic classes and added to ``components.schemas``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from api.jobkinds import REQUEST_MODELS
from api.models import JobKind

REF_TEMPLATE = "#/components/schemas/{model}"


@lru_cache
def _config_schemas() -> tuple[dict[JobKind, dict[str, Any]], dict[str, Any]]:
    kinds = list(REQUEST_MODELS)
    refs, top = models_json_schema([(REQUEST_MODELS[k], "validation") for k in kinds], ref_template=REF_TEMPLATE)
    by_kind = {kind: refs[(REQUEST_MODELS[kind], "validation")] for kind in kinds}
    return by_kind, top.get("$defs", {})


def request_body(kind: JobKind) -> dict[str, Any]:
    """``openapi_extra`` for a submission route: the kind's config as JSON or YAML."""
    ref = _config_schemas()[0][kind]
    return {
        "requestBody": {
            "required": True,
            "description": "The job's config, exactly the engine's YAML format: as JSON, or as YAML with "
            "`Content-Type: application/yaml` (an existing config file can be posted as is).",
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
            components[name] = definition
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
