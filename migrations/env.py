"""Alembic environment: the models' metadata, and the database URL from the service settings."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from jobcore.db import make_engine
from jobcore.models import Base
from jobcore.settings import ServiceSettings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    # an explicit URL (tests, the admin command) wins over the environment
    return config.attributes.get("database_url") or ServiceSettings().database_url


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(database_url())
    with engine.connect() as connection:
        # batch mode lets later migrations alter tables on SQLite too
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
