"""Make sure a Postgres and a Redis server answer for the test suite, starting them from installed binaries when
nothing answers; print the ``export`` lines that point the tests at them.

Used by ``make test``: ``eval "$(python scripts/test_services.py)"``. Servers this script starts keep running (their
data lives under ``.cache/services``) so later runs reuse them; each test run still gets its own database.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".cache" / "services"


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(port: int, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if answers("127.0.0.1", port):
            return
        time.sleep(0.2)
    sys.exit(f"{what} did not start on port {port}; see {STATE}")


def log(message: str) -> None:
    print(message, file=sys.stderr)


def postgres_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def ensure_postgres() -> str:
    configured = os.environ.get("FINETUNING_TEST_POSTGRES")
    if configured:
        return configured
    if answers("127.0.0.1", 5432):
        return "postgresql+psycopg://postgres@127.0.0.1:5432"
    # the machine's own cluster, if Debian's tools manage one
    if shutil.which("pg_ctlcluster") and glob.glob("/etc/postgresql/*/main"):
        version = sorted(Path(p).parent.name for p in glob.glob("/etc/postgresql/*/main"))[-1]
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False)
        if answers("127.0.0.1", 5432):
            wait_for(5432, "PostgreSQL")
            return "postgresql+psycopg://postgres@127.0.0.1:5432"
    initdb, pg_ctl = postgres_binary("initdb"), postgres_binary("pg_ctl")
    if not (initdb and pg_ctl):
        sys.exit("PostgreSQL does not answer on 127.0.0.1:5432 and no initdb/pg_ctl is installed: install postgresql")
    data = STATE / "postgres"
    port = free_port()
    run_as = _unprivileged_prefix(data)
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        _chown_for(data)
        subprocess.run(
            [*run_as, initdb, "-D", str(data), "-U", "postgres", "--auth=trust"], check=True, stdout=subprocess.DEVNULL
        )
    log_file = data / "server.log"
    subprocess.run(
        [*run_as, pg_ctl, "-D", str(data), "-l", str(log_file), "-o", f"-p {port} -k {data} -h 127.0.0.1", "start"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wait_for(port, "PostgreSQL")
    log(f"started PostgreSQL on 127.0.0.1:{port} ({data})")
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}"


def _unprivileged_prefix(data: Path) -> list[str]:
    # initdb and postgres refuse to run as root
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser"):
        try:
            import pwd

            pwd.getpwnam("postgres")
            return ["runuser", "-u", "postgres", "--"]
        except KeyError:
            pass
    sys.exit("running as root without a 'postgres' user to start PostgreSQL as; create one or start PostgreSQL")


def _chown_for(path: Path) -> None:
    # the server runs as 'postgres' when we are root: it must own its data folder
    if os.geteuid() == 0:
        import pwd

        user = pwd.getpwnam("postgres")
        os.chown(path, user.pw_uid, user.pw_gid)


def ensure_redis() -> str:
    configured = os.environ.get("FINETUNING_TEST_REDIS")
    if configured:
        return configured
    if answers("127.0.0.1", 6379):
        return "redis://127.0.0.1:6379"
    server = shutil.which("redis-server")
    if not server:
        sys.exit("Redis does not answer on 127.0.0.1:6379 and redis-server is not installed: install redis-server")
    STATE.mkdir(parents=True, exist_ok=True)
    port = free_port()
    subprocess.run(
        [
            server,
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(STATE),
            "--logfile",
            str(STATE / "redis.log"),
        ],
        check=True,
    )
    wait_for(port, "Redis")
    log(f"started Redis on 127.0.0.1:{port}")
    return f"redis://127.0.0.1:{port}"


def main() -> None:
    print(f"export FINETUNING_TEST_POSTGRES={ensure_postgres()}")
    print(f"export FINETUNING_TEST_REDIS={ensure_redis()}")


if __name__ == "__main__":
    main()
