"""Project secrets through the API (write-only: a read shows the name, when it was set and by whom, never the value),
and what a submission does with credentials: references (``${secrets.NAME}``, ``env_secrets``) must name secrets the
project has; a credential typed inline is moved into a secret of the job's own, so no plaintext is stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from api.errors import ApiError, ErrorIssue, not_found
from finetuning.redaction import lift, references
from jobcore import secrets
from jobcore.secrets import ENV_SECRETS_ALLOWED, MAX_SECRET_BYTES, SECRET_NAME, SecretInfo
from jobcore.settings import ServiceSettings

ENV_SECRETS_KEY = "env_secrets"
INLINE_WARNING = (
    "{count} credential(s) typed into the config ({where}) were moved into secrets of this job, stored encrypted and "
    'shown masked. To stop pasting them: POST /v1/secrets {{"name": "MY_SECRET", "value": ...}} once, then write '
    "${{secrets.MY_SECRET}} in the config (or map an environment variable with env_secrets: {{HF_TOKEN: MY_SECRET}})."
)


def _check_name(name: str) -> None:
    if not SECRET_NAME.match(name) or name.startswith("_"):
        raise ApiError(
            422,
            "invalid_secret_name",
            f"{name!r} is not a secret name: letters, digits and '_', at most 64, not starting with a digit or '_'",
            "name",
        )


def _check_value(value: str) -> None:
    if not value:
        raise ApiError(422, "invalid_secret_value", "the value is empty", "value")
    if len(value.encode("utf-8")) > MAX_SECRET_BYTES:
        raise ApiError(422, "invalid_secret_value", f"the value is longer than {MAX_SECRET_BYTES} bytes", "value")


def create(
    session: Session, settings: ServiceSettings, project: str, name: str, value: str, by: str | None
) -> SecretInfo:
    _check_name(name)
    _check_value(value)
    if secrets.get_info(session, project, name) is not None:
        raise ApiError(409, "secret_exists", f"secret {name} exists: PUT /v1/secrets/{name} replaces its value", "name")
    info, _ = secrets.put(session, settings, project, name, value, by=by)
    return info


def rotate(
    session: Session, settings: ServiceSettings, project: str, name: str, value: str, by: str | None
) -> SecretInfo:
    _check_value(value)
    if secrets.get_info(session, project, name) is None:
        raise not_found("secret", name)
    info, _ = secrets.put(session, settings, project, name, value, by=by)
    return info


def read(session: Session, project: str, name: str) -> SecretInfo:
    info = secrets.get_info(session, project, name)
    if info is None:
        raise not_found("secret", name)
    return info


def remove(session: Session, project: str, name: str) -> None:
    if not secrets.delete(session, project, name):
        raise not_found("secret", name)


@dataclass
class SubmittedSecrets:
    """What a submission's credentials became: references checked, inline ones to store with the job."""

    env_secrets: dict[str, str] = field(default_factory=dict)  # environment variable -> secret name
    inline: dict[str, str] = field(default_factory=dict)  # job secret name -> value (stored with the job)
    moved: list[str] = field(default_factory=list)  # where inline credentials were found

    def warning(self) -> str | None:
        if not self.inline:
            return None
        return INLINE_WARNING.format(count=len(self.inline), where=", ".join(self.moved))


def take_env_secrets(data: dict[str, Any]) -> dict[str, str]:
    """The body's ``env_secrets`` (removed from it: it is not part of the engine's config), checked."""
    raw = data.pop(ENV_SECRETS_KEY, None)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ApiError(
            422, "invalid_config", "env_secrets must map environment variables to secret names", ENV_SECRETS_KEY
        )
    allowed = ", ".join(sorted(ENV_SECRETS_ALLOWED))
    for variable, name in raw.items():
        param = f"{ENV_SECRETS_KEY}.{variable}"
        if variable not in ENV_SECRETS_ALLOWED:
            raise ApiError(422, "invalid_config", f"{variable} cannot be set from a secret (allowed: {allowed})", param)
        if not isinstance(name, str) or not SECRET_NAME.match(name):
            raise ApiError(422, "invalid_config", "the value must be the name of a secret of the project", param)
    return dict(raw)


def lift_inline(job_id: str, submitted: dict[str, Any], config: dict[str, Any]) -> tuple[Any, Any, SubmittedSecrets]:
    """``submitted`` and ``config`` with every inline credential replaced by a reference to a secret of the job."""
    names: dict[str, str] = {}
    prefix = f"_JOB_{job_id.replace('-', '')[:12].upper()}_"

    def name_for(value: str) -> str:
        return names.setdefault(value, f"{prefix}{len(names) + 1}")

    config, taken = lift(config, name_for)
    submitted, taken_submitted = lift(submitted, name_for)
    moved = sorted({loc for loc, name in references(config) if name.startswith(prefix)})
    return submitted, config, SubmittedSecrets(inline={**taken, **taken_submitted}, moved=moved)


def check_references(
    session: Session, project: str, config: dict[str, Any], env_secrets: dict[str, str], inline: set[str]
) -> None:
    """422 ``secret_not_found`` naming each reference to a secret the project does not have."""
    wanted = [(loc, name) for loc, name in references(config)]
    wanted += [(f"{ENV_SECRETS_KEY}.{variable}", name) for variable, name in env_secrets.items()]
    have = secrets.existing_names(session, project, {name for _, name in wanted} - inline) | inline
    missing = [(loc, name) for loc, name in wanted if name not in have]
    if missing:
        issues = [ErrorIssue(param=loc, message=f"no secret named {name} in this project") for loc, name in missing]
        loc, name = missing[0]
        raise ApiError(
            422,
            "secret_not_found",
            f"{loc}: no secret named {name} in this project (POST /v1/secrets to create it)",
            loc,
            details=issues,
        )


def store_inline(
    session: Session, settings: ServiceSettings, project: str, job_id: str, found: SubmittedSecrets
) -> None:
    for name, value in found.inline.items():
        secrets.put(session, settings, project, name, value, by=None, job_id=job_id)
