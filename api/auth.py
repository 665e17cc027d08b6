"""Bearer API tokens: each belongs to a project, and every job query is scoped to the caller's project.

Tokens are stored as their SHA-256 (hex): a leaked database does not leak usable tokens, and a token with 256 bits
of randomness needs no slow hash. ``finetuning-admin token create`` makes them (see ``api/admin.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import SettingsDep
from api.errors import ApiError
from jobcore.models import ApiToken

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


class TokenCache:
    """Which project a valid token belongs to, remembered for ``seconds`` per API process: most requests then need
    no token query. A revoked token keeps working on a process for at most that long."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._projects: dict[str, tuple[str, float]] = {}

    def get(self, digest: str) -> str | None:
        found = self._projects.get(digest)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def put(self, digest: str, project: str) -> None:
        if self.seconds <= 0:
            return
        if len(self._projects) > 10_000:  # many tokens, or someone cycling them: start again
            self._projects.clear()
        self._projects[digest] = (project, time.monotonic() + self.seconds)


@dataclass(frozen=True)
class Caller:
    """Who sent the request: the digest of its token (None when authentication is disabled). Which project that
    is gets looked up inside the request's unit of work (:meth:`project`), on the connection it already holds."""

    token_digest: str | None
    cache: TokenCache | None = None

    def label(self, session: Session) -> str | None:
        """Who is acting, for records such as "set by": the token's name and prefix (never the token); None when
        authentication is disabled."""
        if self.token_digest is None:
            return None
        token = session.scalar(select(ApiToken).where(ApiToken.token_hash == self.token_digest))
        return None if token is None else f"{token.name or 'token'} ({token.prefix}...)"

    def project(self, session: Session) -> str:
        if self.token_digest is None:
            return DEFAULT_PROJECT
        cached = self.cache.get(self.token_digest) if self.cache is not None else None
        if cached is not None:
            return cached
        token = session.scalar(select(ApiToken).where(ApiToken.token_hash == self.token_digest))
        # the lookup is by hash already; the constant-time compare keeps a timing side channel out of the last step
        if token is None or not hmac.compare_digest(token.token_hash, self.token_digest):
            raise _unauthorized("unknown API token")
        if token.revoked_at is not None:
            raise _unauthorized("this API token was revoked")
        if self.cache is not None:
            self.cache.put(self.token_digest, token.project)
        return token.project


async def current_caller(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Caller:
    """The request's token (a missing one is a 401 at once); every request is project 'default' when auth is
    disabled."""
    if settings.auth_disabled:
        return Caller(None)
    if credentials is None or not credentials.credentials:
        raise _unauthorized("missing API token: send 'Authorization: Bearer <token>'")
    cache: TokenCache = request.app.state.token_cache
    return Caller(hash_token(credentials.credentials), cache)


CallerDep = Annotated[Caller, Depends(current_caller)]
