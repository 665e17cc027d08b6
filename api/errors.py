"""One error envelope for every answer that is not a success: ``{"error": {"code", "message", "param"}}``.

Our own failures raise :class:`ApiError`; FastAPI's request validation errors, Starlette's HTTP errors and anything
unexpected are converted to the same shape by the handlers installed with :func:`install_error_handlers`, so no
client ever sees a traceback or a second error format.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from finetuning.config.base import format_loc
from finetuning.redaction import redact
from jobcore.db import is_unavailable

logger = logging.getLogger(__name__)


class ErrorIssue(BaseModel):
    """One problem among several (e.g. every invalid field of a config)."""

    param: str | None = Field(description="Field path at fault, e.g. data_conf.training_data.datasets[0].path.")
    message: str


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. invalid_config, not_found, unauthorized.")
    message: str = Field(description="What was wrong and what to do, for people.")
    param: str | None = Field(default=None, description="The field, parameter or header at fault, if any.")
    details: list[ErrorIssue] | None = Field(default=None, description="Every issue, when there are several.")


class ErrorResponse(BaseModel):
    """The envelope of every error answer."""

    error: ErrorBody


class ApiError(Exception):
    """An error answer: HTTP status, code, message for people, and the parameter at fault."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        param: str | None = None,
        *,
        details: Sequence[ErrorIssue] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.param = param
        self.details = list(details) if details is not None else None
        self.headers = headers

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "param": self.param}
        if self.details is not None:
            error["details"] = [issue.model_dump() for issue in self.details]
        return {"error": error}


def not_found(what: str = "job", ident: str | None = None) -> ApiError:
    # the same answer whether the job does not exist or belongs to another project: existence is not revealed
    suffix = f" {ident}" if ident else ""
    return ApiError(404, "not_found", f"{what}{suffix} not found")


def error_response(exc: ApiError) -> JSONResponse:
    # a message may quote what was sent (a URI with a password in it): masked like every other answer
    return JSONResponse(redact(exc.body()), status_code=exc.status_code, headers=exc.headers)


# Documented on every route that can answer these, so generated clients know the error type.
def error_responses(*codes: int, database: bool = True) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "The body could not be read (not UTF-8, not JSON)",
        401: "Missing, unknown or revoked API token",
        404: "No such job in the caller's project",
        409: "The job is not in a state that allows this",
        413: "Request body too large",
        415: "Unsupported Content-Type",
        422: "Invalid request: the param names the field",
        429: "Too many active jobs in the project (`too_many_jobs`); retry after `Retry-After` seconds",
        500: "Internal error (the message has a reference to the service log)",
        503: "The database (or another dependency) is unreachable; retry after `Retry-After` seconds",
    }
    # every route can answer 422 (a bad parameter) and 500 for a bug, and one that reads the database (``database``)
    # 503 while it is unreachable: all in the envelope, not FastAPI's shape
    wanted = sorted({*codes, 422, 500, *((503,) if database else ())})
    return {code: {"model": ErrorResponse, "description": descriptions.get(code, "Error")} for code in wanted}


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
}


async def _api_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _http_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "error" if exc.status_code < 500 else "internal_error")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return error_response(ApiError(exc.status_code, code, message, headers=getattr(exc, "headers", None)))


def _param_of(loc: Sequence[Any]) -> str | None:
    """``("query", "limit")`` -> ``limit``; ``("header", "idempotency-key")`` -> ``Idempotency-Key``."""
    if not loc:
        return None
    where, rest = loc[0], list(loc[1:])
    if where == "header" and rest:
        return "-".join(part.capitalize() for part in str(rest[0]).split("-"))
    if where in ("query", "path", "body", "cookie") and rest:
        return format_loc(rest)
    return format_loc(list(loc))


async def _validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    issues = [ErrorIssue(param=_param_of(err.get("loc", ())), message=str(err.get("msg", ""))) for err in exc.errors()]
    first = issues[0] if issues else ErrorIssue(param=None, message="invalid request")
    message = f"{first.param}: {first.message}" if first.param else first.message
    if len(issues) > 1:
        message += f" (and {len(issues) - 1} more problem{'s' if len(issues) > 2 else ''})"
    return error_response(ApiError(422, "invalid_parameter", message, first.param, details=issues))


DATABASE_RETRY_AFTER_S = 5


def database_unavailable() -> ApiError:
    return ApiError(
        503,
        "database_unavailable",
        f"the job database is unreachable right now: retry in {DATABASE_RETRY_AFTER_S} s (repeat a submission with "
        "the same Idempotency-Key, so that it cannot make a second job)",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


async def _database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    # a database that is down or restarting is the platform's problem and worth a retry: 503, not a 500
    if not is_unavailable(exc):
        return await _unexpected_error_handler(request, exc)
    logger.warning(
        "database unavailable on %s %s: %s", request.method, request.url.path, type(getattr(exc, "orig", exc)).__name__
    )
    return error_response(database_unavailable())


async def _unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    # the reference ties the client's answer to the server log without showing the client any internals
    reference = uuid.uuid4().hex[:12]
    logger.error("unhandled error %s on %s %s", reference, request.method, request.url.path, exc_info=exc)
    message = f"internal error (reference {reference}); the service log has the details"
    return error_response(ApiError(500, "internal_error", message))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(SQLAlchemyError, _database_error_handler)
    app.add_exception_handler(Exception, _unexpected_error_handler)
