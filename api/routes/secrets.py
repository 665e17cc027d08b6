"""A project's secrets: write-only values, by name. Configs refer to them as ``${secrets.NAME}``; ``env_secrets`` in a
job body maps engine environment variables to them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from api import secret_service
from api.auth import Caller, CallerDep
from api.deps import DatabaseDep, SettingsDep
from api.errors import error_responses
from jobcore.secrets import SecretInfo

router = APIRouter(prefix="/secrets", tags=["secrets"])

SecretName = Annotated[str, Path(max_length=64, description="The secret's name, as configs refer to it.")]


class SecretWrite(BaseModel):
    name: str = Field(max_length=64, description="Letters, digits and '_'; not starting with a digit or '_'.")
    value: str = Field(description="The credential. Stored encrypted; never shown again.")


class SecretValue(BaseModel):
    value: str = Field(description="The new value. Stored encrypted; never shown again.")


class SecretRead(BaseModel):
    name: str
    created_at: datetime
    updated_at: datetime
    updated_by: str | None = Field(description="The API token (its name and first characters) that set the value.")


class SecretList(BaseModel):
    data: list[SecretRead]


def _read(info: SecretInfo) -> SecretRead:
    return SecretRead(
        name=info.name, created_at=info.created_at, updated_at=info.updated_at, updated_by=info.updated_by
    )


def _by(session: Session, caller: Caller) -> str | None:
    """Who is setting a secret: the token's name and prefix (never the token)."""
    return caller.label(session)


@router.post(
    "",
    status_code=201,
    name="create_secret",
    summary="Create a secret",
    responses=error_responses(400, 401, 409, 422),
)
async def create_secret(
    body: SecretWrite, database: DatabaseDep, caller: CallerDep, settings: SettingsDep
) -> SecretRead:
    """Store a credential under a name; the answer shows the name and when it was set, never the value."""

    def work(session: Session) -> SecretRead:
        project = caller.project(session)
        return _read(secret_service.create(session, settings, project, body.name, body.value, _by(session, caller)))

    return await database.run(work)


@router.get("", name="list_secrets", summary="List secrets", responses=error_responses(401))
async def list_secrets(database: DatabaseDep, caller: CallerDep) -> SecretList:
    """The project's secrets: names and when they were set, never values."""
    from jobcore import secrets

    return await database.run(
        lambda session: SecretList(data=[_read(i) for i in secrets.list_infos(session, caller.project(session))])
    )


@router.get("/{name}", name="get_secret", summary="Get a secret's metadata", responses=error_responses(401, 404))
async def get_secret(name: SecretName, database: DatabaseDep, caller: CallerDep) -> SecretRead:
    """When the secret was set and by whom; never its value."""
    return await database.run(lambda session: _read(secret_service.read(session, caller.project(session), name)))


@router.put(
    "/{name}", name="rotate_secret", summary="Replace a secret's value", responses=error_responses(400, 401, 404, 422)
)
async def rotate_secret(
    name: SecretName, body: SecretValue, database: DatabaseDep, caller: CallerDep, settings: SettingsDep
) -> SecretRead:
    """Rotate: jobs that start from now on get the new value."""

    def work(session: Session) -> SecretRead:
        project = caller.project(session)
        return _read(secret_service.rotate(session, settings, project, name, body.value, _by(session, caller)))

    return await database.run(work)


@router.delete(
    "/{name}", status_code=204, name="delete_secret", summary="Delete a secret", responses=error_responses(401, 404)
)
async def delete_secret(name: SecretName, database: DatabaseDep, caller: CallerDep) -> Response:
    """Jobs that refer to it and have not started yet fail with ``secret_not_found`` when they start."""
    await database.run(lambda session: secret_service.remove(session, caller.project(session), name))
    return Response(status_code=204)
