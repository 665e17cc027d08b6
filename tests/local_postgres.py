"""A throwaway PostgreSQL server that a test owns: started from the installed binaries in a temporary folder, on a
free port, and stopped (even killed, ``pg_ctl stop -m immediate``) and started again on the same port, so tests can
take the database away from a running service and give it back.

    with LocalPostgres() as pg:              # initdb + start
        url = pg.create_database("jobs")     # postgresql+psycopg://postgres@127.0.0.1:<port>/jobs
        migrate(url)                         # alembic upgrade head
        pg.stop()                            # like a crash: clients' connections die
        pg.start()                           # crash recovery, same port, same data

``LocalPostgres.available()`` says whether ``initdb`` and ``pg_ctl`` are installed (tests skip otherwise). As root
(containers), the server runs as the ``postgres`` user through ``runuser``, which owns the data folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from scripts.test_services import free_port, postgres_binary

REPO_ROOT = Path(__file__).resolve().parents[1]


def migrate(url: str) -> None:
    """Alembic ``upgrade head`` on the database at ``url`` (as the service tests' conftest does)."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


class LocalPostgres:
    """A PostgreSQL server of the caller's own: ``start()``, ``stop(immediate=True)``, ``restart()``, ``url``."""

    def __init__(self, root: Path | None = None, port: int | None = None) -> None:
        initdb, pg_ctl = postgres_binary("initdb"), postgres_binary("pg_ctl")
        if not (initdb and pg_ctl):
            raise RuntimeError("initdb/pg_ctl not found (install postgresql): LocalPostgres needs them")
        self.initdb, self.pg_ctl = initdb, pg_ctl
        # not under pytest's tmp_path: its parent is private to root, and the server may run as 'postgres'
        self.root = root or Path(tempfile.mkdtemp(prefix="local-postgres-"))
        self._own_root = root is None
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = port or free_port()
        self._run_as = self._unprivileged_prefix()

    @staticmethod
    def available() -> bool:
        """Whether initdb and pg_ctl are installed (and, as root, a 'postgres' user can run them)."""
        if not (postgres_binary("initdb") and postgres_binary("pg_ctl")):
            return False
        if os.geteuid() != 0:
            return True
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return False
        return shutil.which("runuser") is not None

    @property
    def url(self) -> str:
        """The server's SQLAlchemy URL, without a database name."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def database_url(self, name: str = "postgres") -> str:
        return f"{self.url}/{name}"

    def _unprivileged_prefix(self) -> list[str]:
        # initdb and postgres refuse to run as root
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(path, user.pw_uid, user.pw_gid)

    def _pg_ctl(self, *args: str, timeout: float = 60) -> None:
        result = subprocess.run(
            [*self._run_as, self.pg_ctl, "-D", str(self.data), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {result.stdout.decode(errors='replace')}\n{log}")

    def _init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._chown(self.root)
        subprocess.run(
            [*self._run_as, self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    @property
    def running(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def start(self, timeout: float = 60) -> None:
        """Starts the server (initialising its data folder the first time) and returns once it accepts
        connections."""
        if not (self.data / "PG_VERSION").exists():
            self._init()
        options = f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off -c full_page_writes=off"
        self._pg_ctl("-l", str(self.log), "-o", options, "-w", "-t", str(int(timeout)), "start", timeout=timeout + 10)
        deadline = time.monotonic() + timeout
        while not self.running:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not listen on port {self.port}; see {self.log}")
            time.sleep(0.05)

    def stop(self, immediate: bool = True) -> None:
        """Stops the server; ``immediate``: at once, like a crash (clients' connections die, recovery on start)."""
        self._pg_ctl("-m", "immediate" if immediate else "fast", "-w", "stop")

    def restart(self, immediate: bool = True) -> None:
        self.stop(immediate=immediate)
        self.start()

    def create_database(self, name: str) -> str:
        """A new database on this server; returns its URL."""
        from sqlalchemy import create_engine, text

        admin = create_engine(self.database_url(), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return self.database_url(name)

    def close(self) -> None:
        """Stops the server if it runs and removes the folder this object made."""
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop()
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
