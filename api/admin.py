"""``finetuning-admin``: API tokens and the database schema, for the people who run the service.

    finetuning-admin token create --project NAME [--name N]   # prints the new token: the only time it is shown
    finetuning-admin token list [--project NAME]
    finetuning-admin token revoke ID_OR_PREFIX
    finetuning-admin db upgrade                                # alembic upgrade head

The database comes from the service settings (``FINETUNING_DATABASE_URL``).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from api.auth import PREFIX_LENGTH, hash_token, new_token
from jobcore.db import session_scope
from jobcore.models import ApiToken, utcnow
from jobcore.settings import ServiceSettings

PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"


class AdminError(Exception):
    """A mistake in an admin command, told to the person who typed it."""


def create_token(session: Session, project: str, name: str | None = None) -> tuple[ApiToken, str]:
    """A new token for ``project``: the stored row and the token itself (not stored, so shown only now)."""
    if not PROJECT_NAME.match(project):
        raise AdminError(f"invalid project name {project!r}: use letters, digits, '_', '.', '-' (at most 100)")
    token = new_token()
    row = ApiToken(project=project, name=name, prefix=token[:PREFIX_LENGTH], token_hash=hash_token(token))
    session.add(row)
    session.flush()
    return row, token


def list_tokens(session: Session, project: str | None = None) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)
    if project is not None:
        query = query.where(ApiToken.project == project)
    return list(session.scalars(query))


def revoke_token(session: Session, id_or_prefix: str) -> ApiToken:
    """Revoke the token with this id or listed prefix (idempotent); refuses an ambiguous or unknown one."""
    if not id_or_prefix:
        raise AdminError("give a token id or prefix")
    matches = list(
        session.scalars(
            select(ApiToken).where(
                or_(
                    ApiToken.id == id_or_prefix,
                    ApiToken.prefix == id_or_prefix,
                    # an id prefix is convenient, but a short one would match too much
                    ApiToken.id.startswith(id_or_prefix) if len(id_or_prefix) >= 8 else ApiToken.id == id_or_prefix,
                )
            )
        )
    )
    if not matches:
        raise AdminError(f"no token with id or prefix {id_or_prefix!r}")
    if len(matches) > 1:
        ids = ", ".join(t.id for t in matches)
        raise AdminError(f"{id_or_prefix!r} matches {len(matches)} tokens ({ids}); give the full id")
    token = matches[0]
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def upgrade_database(settings: ServiceSettings, revision: str = "head") -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(ALEMBIC_INI))
    config.attributes["database_url"] = settings.database_url
    config.attributes["configure_logging"] = False  # alembic.ini's logging would replace the caller's handlers
    command.upgrade(config, revision)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finetuning-admin", description="Administer the finetuning job service.")
    groups = parser.add_subparsers(dest="group", required=True)
    token = groups.add_parser("token", help="API tokens").add_subparsers(dest="action", required=True)
    create = token.add_parser("create", help="make a token for a project and print it (shown only this once)")
    create.add_argument("--project", required=True)
    create.add_argument("--name", help="what the token is for, shown in listings")
    listing = token.add_parser("list", help="list tokens (never the tokens themselves)")
    listing.add_argument("--project")
    revoke = token.add_parser("revoke", help="revoke a token by id or prefix")
    revoke.add_argument("id_or_prefix")
    db = groups.add_parser("db", help="the database schema").add_subparsers(dest="action", required=True)
    db.add_parser("upgrade", help="migrate the database to the newest schema (alembic upgrade head)")
    return parser


def _format_table(tokens: Sequence[ApiToken]) -> str:
    rows = [("ID", "PREFIX", "PROJECT", "NAME", "CREATED", "REVOKED")]
    for t in tokens:
        revoked = t.revoked_at.isoformat(timespec="seconds") if t.revoked_at else "-"
        rows.append((t.id, t.prefix, t.project, t.name or "-", t.created_at.isoformat(timespec="seconds"), revoked))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one admin command; returns the exit status (0 on success)."""
    args = _parser().parse_args(argv)
    settings = ServiceSettings()  # fresh, not the cached one: the command runs once, with today's environment
    try:
        if args.group == "db":
            logging.basicConfig(level=logging.WARNING, format="%(message)s")
            logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)  # says what it migrates
            upgrade_database(settings)
            sys.stderr.write("database is at the newest schema\n")
            return 0
        with session_scope(settings.database_url) as session:
            if args.action == "create":
                row, token = create_token(session, args.project, args.name)
                sys.stdout.write(token + "\n")
                sys.stderr.write(f"token {row.id} for project {row.project!r}: store it now, it is not shown again\n")
            elif args.action == "list":
                sys.stdout.write(_format_table(list_tokens(session, args.project)) + "\n")
            else:
                row = revoke_token(session, args.id_or_prefix)
                sys.stdout.write(
                    f"revoked {row.id} ({row.prefix}, project {row.project}); running API processes refuse it within "
                    f"{settings.token_cache_seconds:g} s (FINETUNING_TOKEN_CACHE_SECONDS)\n"
                )
    except AdminError as exc:
        sys.stderr.write(f"finetuning-admin: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
