"""Bearer API tokens: each belongs to a project, and every job query is scoped to the caller's project.

Tokens are stored as their SHA-256 (hex): a leaked database does not leak usable tokens, and a token with 256 bits
of randomness needs no slow hash. ``finetuning-admin token create`` makes them (see ``api/admin.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from api.deps import SessionDep, SettingsDep
from api.errors import ApiError
from api.models import ApiToken

DEFAULT_PROJECT = "default"
TOKEN_PREFIX = "ft_"
PREFIX_LENGTH = 12  # what listings show: enough to tell tokens apart, far too little to guess the rest

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiToken",
    description="An API token made with `finetuning-admin token create --project NAME`.",
)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, "Authorization", headers={"WWW-Authenticate": "Bearer"})


def current_project(
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str:
    """The project of the request's token; every request is project 'default' when auth is disabled."""
    if settings.auth_disabled:
        return DEFAULT_PROJECT
    if credentials is None or not credentials.credentials:
        raise _unauthorized("missing API token: send 'Authorization: Bearer <token>'")
    digest = hash_token(credentials.credentials)
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    # the lookup is by hash already; the constant-time compare keeps a timing side channel out of the last step
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        raise _unauthorized("unknown API token")
    if token.revoked_at is not None:
        raise _unauthorized("this API token was revoked")
    return token.project


ProjectDep = Annotated[str, Depends(current_project)]
