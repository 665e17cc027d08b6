"""Project secrets: encrypted at rest (Fernet from ``cryptography``, keys from the settings, rotation by listing a new
key first), written and rotated through the API, read back only by a worker, just before it starts the engine that
uses them. Nothing here returns a value to the API."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select
from sqlalchemy.orm import Session

from jobcore.models import Secret, utcnow
from jobcore.settings import SERVICE_HOME, ServiceSettings

SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
KEY_FILE = SERVICE_HOME / "secrets.key"
MAX_SECRET_BYTES = 64 * 1024

# The environment variables a job may fill from secrets (env_secrets): credentials the engine's libraries read. An
# open list would let a job set LD_PRELOAD or PYTHONPATH for the engine process: code execution on the worker.
ENV_SECRETS_ALLOWED = frozenset(
    {
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_TRACKING_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "WANDB_API_KEY",
    }
)


class SecretsUnavailable(Exception):
    """The secrets cannot be decrypted here (this process has another key than the one that encrypted them)."""


@dataclass(frozen=True)
class SecretInfo:
    """What anyone may know of a secret: never its value."""

    name: str
    created_at: datetime
    updated_at: datetime
    updated_by: str | None


def _info(row: Secret) -> SecretInfo:
    return SecretInfo(row.name, row.created_at, row.updated_at, row.updated_by)


@lru_cache(maxsize=8)
def _fernet(keys: str) -> MultiFernet:
    return MultiFernet([Fernet(key.strip().encode()) for key in keys.split(",") if key.strip()])


def cipher(settings: ServiceSettings) -> MultiFernet:
    """The settings' keys, or the key of this machine's key file (made on first use, readable by its owner only)."""
    if settings.secrets_key is not None:
        return _fernet(settings.secrets_key.get_secret_value())
    return _fernet(_local_key(KEY_FILE.resolve()))


def _local_key(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
    return path.read_text().strip()


def put(
    session: Session,
    settings: ServiceSettings,
    project: str,
    name: str,
    value: str,
    *,
    by: str | None,
    job_id: str | None = None,
) -> tuple[SecretInfo, bool]:
    """Create or replace ``name`` in ``project``; returns its info and whether it was created."""
    ciphertext = cipher(settings).encrypt(value.encode("utf-8"))
    row = session.scalar(select(Secret).where(Secret.project == project, Secret.name == name).with_for_update())
    now = utcnow()
    if row is None:
        row = Secret(
            project=project,
            name=name,
            ciphertext=ciphertext,
            job_id=job_id,
            created_at=now,
            updated_at=now,
            updated_by=by,
        )
        session.add(row)
        session.flush()
        return _info(row), True
    row.ciphertext, row.updated_at, row.updated_by = ciphertext, now, by
    session.flush()
    return _info(row), False


def get_info(session: Session, project: str, name: str) -> SecretInfo | None:
    row = session.scalar(select(Secret).where(Secret.project == project, Secret.name == name, Secret.job_id.is_(None)))
    return None if row is None else _info(row)


def list_infos(session: Session, project: str) -> list[SecretInfo]:
    rows = session.scalars(
        select(Secret).where(Secret.project == project, Secret.job_id.is_(None)).order_by(Secret.name)
    )
    return [_info(row) for row in rows]


def delete(session: Session, project: str, name: str) -> bool:
    row = session.scalar(select(Secret).where(Secret.project == project, Secret.name == name, Secret.job_id.is_(None)))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def existing_names(session: Session, project: str, names: set[str]) -> set[str]:
    """Which of ``names`` the project has."""
    if not names:
        return set()
    rows = session.scalars(select(Secret.name).where(Secret.project == project, Secret.name.in_(names)))
    return set(rows)


def reveal(session: Session, settings: ServiceSettings, project: str, names: set[str]) -> dict[str, str]:
    """The values of ``names`` in ``project`` (for the worker, just before it starts the engine); names it does not
    have are left out."""
    if not names:
        return {}
    rows = session.scalars(select(Secret).where(Secret.project == project, Secret.name.in_(names)))
    values: dict[str, str] = {}
    for row in rows:
        try:
            values[row.name] = cipher(settings).decrypt(row.ciphertext).decode("utf-8")
        except InvalidToken:
            raise SecretsUnavailable(
                f"secret {row.name} cannot be decrypted with this worker's key: give the API and every worker the "
                "same FINETUNING_SECRETS_KEY"
            ) from None
    return values
