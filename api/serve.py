"""``make serve``: the API and one worker in the foreground, configured from the environment.

Where no database or broker is configured, it uses Postgres and Redis when they answer on their default ports, and
otherwise the embedded defaults (SQLite and a SQLite-backed broker) through the same code path.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from finetuning.redaction import redact_text

logger = logging.getLogger("finetuning.serve")

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _ensure_postgres_database(server: str, name: str) -> str:
    from sqlalchemy import create_engine, text

    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar()
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return f"{server}/{name}"


def resolve_service_env(environ: Mapping[str, str], *, database_name: str = "finetuning") -> dict[str, str]:
    """The database and broker settings to run with: configured ones, else local servers, else embedded."""
    chosen: dict[str, str] = {}
    if not environ.get("FINETUNING_DATABASE_URL") and _answers("127.0.0.1", 5432):
        try:
            chosen["FINETUNING_DATABASE_URL"] = _ensure_postgres_database(DEFAULT_POSTGRES, database_name)
        except Exception as exc:  # a Postgres we cannot use (auth, permissions): fall back to SQLite
            logger.warning("Postgres answers on 5432 but is not usable (%s); using the embedded SQLite", exc)
    if not environ.get("FINETUNING_BROKER_URL") and _answers("127.0.0.1", 6379):
        chosen["FINETUNING_BROKER_URL"] = DEFAULT_REDIS
    return chosen


def upgrade_database(database_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(Path(__file__).resolve().parents[1] / "alembic.ini"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


def start_worker(environ: Mapping[str, str], queue: str, concurrency: int) -> subprocess.Popen[bytes]:
    # its own session (a Ctrl-C at the terminal is handled here), but it dies with us even if we are SIGKILLed
    from finetuning.subprocesses import die_with_parent
    from jobcore.process import worker_command

    return subprocess.Popen(
        worker_command(sys.executable, queue, concurrency=concurrency),
        env=dict(environ),
        start_new_session=True,
        preexec_fn=die_with_parent(),
    )


def main(argv: list[str] | None = None, environ: MutableMapping[str, str] = os.environ) -> int:
    parser = argparse.ArgumentParser(prog="finetuning-serve", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-worker", action="store_true", help="Serve the API only.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    environ.update(resolve_service_env(environ))
    from jobcore.settings import ServiceSettings

    settings = ServiceSettings()
    from jobcore.logs import redact_logs, use_json_logs

    if settings.log_format == "json":
        use_json_logs()
    redact_logs()
    logger.info("database %s; broker %s", redact_text(settings.database_url), redact_text(settings.broker_url))
    upgrade_database(settings.database_url)
    worker = None if args.no_worker else start_worker(environ, settings.default_queue, settings.worker_concurrency)
    # uvicorn re-raises the SIGTERM it caught once it has shut down; turn that into an exit so `finally` runs
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        import uvicorn

        from api.main import create_app

        # with JSON logs, keep our handlers rather than uvicorn's own text configuration
        log_config = None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG
        uvicorn.run(
            create_app(settings),
            host=args.host,
            port=args.port,
            log_level="info",
            log_config=log_config,
            # open streams are cut after this on shutdown (clients resume with Last-Event-ID): Ctrl-C always stops
            timeout_graceful_shutdown=10,
        )
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
