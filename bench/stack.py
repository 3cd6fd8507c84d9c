"""What every benchmark needs: servers, its own database and Redis prefix (removed afterwards),
and the service started as real processes."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from redis import Redis
from sqlalchemy.engine import make_url

from app.embedded import create_database, embedded_servers


@dataclass(frozen=True)
class BenchStack:
    """A temporary directory, the bench's own database and Redis key prefix."""

    tmp: Path
    database_url: str
    redis_url: str
    prefix: str

    def service_env(self, key: str, port: int, **settings: str) -> dict[str, str]:
        """The environment of the service's processes: this stack, an admin key, a port."""
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "REDIS_KEY_PREFIX": self.prefix,
            "PORT": str(port),
            "BOOTSTRAP_API_KEY": key,
            **settings,
        }


CLI = [sys.executable, "-m", "app.cli"]


def start_service(stack: ExitStack, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Migrate, start the API and one worker (stopped when `stack` closes), wait for /ready;
    returns the worker process."""
    subprocess.run([*CLI, "migrate"], env=env, check=True, capture_output=True)
    api = subprocess.Popen([*CLI, "serve"], env=env)
    worker = subprocess.Popen([*CLI, "worker"], env=env)
    stack.callback(stop, [api, worker])
    wait_ready(f"http://127.0.0.1:{env['PORT']}")
    return worker


def bench_stack(stack: ExitStack, label: str, run: str) -> BenchStack:
    """Servers from DATABASE_URL / REDIS_URL, else embedded ones in a temporary DATA_DIR; a
    fresh database on that Postgres and a fresh key prefix, both removed when `stack` closes."""
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{label}-")))
    database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if not database_url or not redis_url:
        urls = stack.enter_context(embedded_servers(tmp / "data", persistent=False))
        database_url, redis_url = database_url or urls.database_url, redis_url or urls.redis_url
    admin = admin_dsn(database_url)
    name = f"li_bench_{label}_{run}"
    asyncio.run(create_database(admin, name))
    stack.callback(lambda: asyncio.run(_drop_database(admin, name)))
    prefix = f"li-bench-{run}"
    stack.callback(delete_keys, redis_url, prefix)
    own_url = make_url(database_url).set(database=name).render_as_string(False)
    return BenchStack(tmp, own_url, redis_url, prefix)


def admin_dsn(database_url: str) -> str:
    """asyncpg DSN of a SQLAlchemy-style URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(base: str, timeout: float = 60) -> None:
    """Wait for /ready to answer 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the API did not become ready")


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM, then SIGKILL after 30 s."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def delete_keys(redis_url: str, prefix: str) -> None:
    """Remove the bench's Redis keys (and arq's keys of its jobs)."""
    client = Redis.from_url(redis_url)
    for pattern in (f"{prefix}*", f"arq:*{prefix}*"):
        for key in client.scan_iter(match=pattern, count=500):
            client.delete(key)
    client.close()


async def _drop_database(admin: str, name: str) -> None:
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()
