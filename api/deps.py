"""Request dependencies: the app's settings and a database session that commits (or rolls back) once per request.

Services never commit. They register work that must only happen once their changes are durable (sending a job to
the queue) with :func:`after_commit`; the session dependency runs it after a successful commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from api.db import transaction
from api.settings import ServiceSettings

logger = logging.getLogger(__name__)

_AFTER_COMMIT = "after_commit"


def get_app_settings(request: Request) -> ServiceSettings:
    """The settings the app was created with (``create_app(settings)``), never a module global."""
    settings: ServiceSettings = request.app.state.settings
    return settings


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the request's transaction has committed; dropped if it rolls back."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def get_session(request: Request) -> Iterator[Session]:
    """One session per request: committed when the handler returns, rolled back when it raises."""
    sessions: sessionmaker[Session] = request.app.state.sessions
    with transaction(sessions) as session:
        yield session
        callbacks: list[Callable[[], None]] = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        try:
            callback()
        except Exception:
            # the data is committed; what failed afterwards (e.g. the broker) must not turn success into a 500
            logger.exception("after-commit callback %r failed", callback)


SettingsDep = Annotated[ServiceSettings, Depends(get_app_settings)]
# scope="function": commit before the response is sent, so a client never sees a job that is not yet stored
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
