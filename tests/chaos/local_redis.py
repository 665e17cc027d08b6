"""A throwaway Redis server that a test owns: ``redis-server`` from the installed binary, in a temporary folder, on a
free port, in the foreground of a child process (so it can be killed by its pid), and started again on the same
port with the same data.

    redis = LocalRedis()          # appendonly: a restart keeps the queues, as a production broker would
    redis.start()
    redis.url                     # redis://127.0.0.1:<port>
    redis.restart()               # SIGKILL (a crash) or SIGTERM, then start on the same port
    redis.flush()                 # FLUSHALL: every queued and unacknowledged message is gone
    redis.close()

``LocalRedis.available()`` says whether ``redis-server`` is installed.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from scripts.test_services import free_port


class LocalRedis:
    """A Redis server of the caller's own: ``start()``, ``stop(kill=True)``, ``restart()``, ``flush()``, ``url``.

    ``persistent`` (default) runs it with an append-only file fsynced at every write, so a restart (even after
    SIGKILL) keeps every message; without it a restart loses everything, like ``flush()``."""

    def __init__(self, root: Path | None = None, port: int | None = None, *, persistent: bool = True) -> None:
        server = shutil.which("redis-server")
        if not server:
            raise RuntimeError("redis-server not found (install redis-server): LocalRedis needs it")
        self.server = server
        self.root = root or Path(tempfile.mkdtemp(prefix="local-redis-"))
        self._own_root = root is None
        self.port = port or free_port()
        self.persistent = persistent
        self.log = self.root / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    @property
    def url(self) -> str:
        """The server's URL, without a database number."""
        return f"redis://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def start(self, timeout: float = 30) -> None:
        """Starts the server and returns once it answers PING."""
        self.root.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        argv = [
            self.server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            *persistence,
            "--dir",
            str(self.root),
            "--logfile",
            str(self.log),
            "--daemonize",
            "no",
        ]
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while not self._pings():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n{log}")
            time.sleep(0.05)

    def _pings(self) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            # ResponseError: LOADING (replaying the append-only file)
            return False
        finally:
            client.close()

    def stop(self, kill: bool = True, timeout: float = 30) -> None:
        """Stops the server: ``kill`` with SIGKILL (a crash: clients' connections die), else SIGTERM (a clean
        shutdown)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        process.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while self.running and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self, kill: bool = True) -> None:
        self.stop(kill=kill)
        self.start()

    def flush(self) -> None:
        """FLUSHALL: every key (queues, unacknowledged messages, results) is gone."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            client.flushall()
        finally:
            client.close()

    def close(self) -> None:
        """Stops the server if it runs and removes the folder this object made."""
        self.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalRedis:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
