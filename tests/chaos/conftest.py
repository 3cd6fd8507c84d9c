"""Chaos tests: each test gets embedded Postgres and Redis servers of its own (whatever
TEST_*_URL says), so it may stop and restart them, and runs the service as real processes
(`ledger-incidences serve` on a loopback port, `ledger-incidences worker`)."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from app.embedded import DATABASE_NAME, EmbeddedPostgres, EmbeddedRedis, create_database
from app.migrations import upgrade_to_head
from app.resources import create_engine
from app.settings import Settings
from tests.e2e.conftest import Child, clean_env, free_port, run_cli, wait_for_status

# The limiter runs on every request (fail-open included) but never refuses in these tests.
NO_LIMITS = {
    "RATE_LIMIT_READ": "1000000/60",
    "RATE_LIMIT_WRITE": "1000000/60",
    "RATE_LIMIT_UPLOAD": "1000000/60",
    "RATE_LIMIT_ANON": "1000000/60",
}


@dataclass
class ChaosStack:
    """This test's servers, and how to run the service against them."""

    root: Path
    postgres: EmbeddedPostgres
    redis: EmbeddedRedis
    database_url: str
    key: str  # BOOTSTRAP_API_KEY: an admin key of tenant `default`

    @property
    def dsn(self) -> str:
        """asyncpg DSN of the service's database (for checks behind the API's back)."""
        return make_url(self.database_url).set(drivername="postgresql").render_as_string(False)

    def env(self, **settings: str) -> dict[str, str]:
        """A child's environment: these servers, the key, no limits, then `settings`."""
        return clean_env(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis.url,
            REDIS_KEY_PREFIX="li-chaos",
            DATA_DIR=str(self.root / "data"),
            HOST="127.0.0.1",
            BOOTSTRAP_API_KEY=self.key,
            **{**NO_LIMITS, **settings},
        )

    @contextmanager
    def serve(self, **settings: str) -> Iterator[tuple[str, Child]]:
        """A ready `serve` process on a free loopback port; yields (base URL, child)."""
        port = free_port()
        with run_cli(["serve"], self.env(PORT=str(port), **settings), self.root / "run") as child:
            base = f"http://127.0.0.1:{port}"
            wait_for_status(f"{base}/ready", 200, child, timeout=60)
            yield base, child

    @contextmanager
    def worker(self, **settings: str) -> Iterator[Child]:
        """A `worker` process (SIGTERM, then SIGKILL, at exit if still alive)."""
        with run_cli(["worker"], self.env(**settings), self.root / "run") as child:
            yield child

    def client(self, base: str) -> httpx.AsyncClient:
        """An HTTP client of the API, authenticated with the admin key."""
        return httpx.AsyncClient(
            base_url=f"{base}/api/v1",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=30,
        )


@pytest.fixture
async def chaos_stack() -> AsyncIterator[ChaosStack]:
    """Fresh embedded servers in a temporary directory (outside pytest's temp root, which a
    concurrent session may lock to 0700 while Postgres runs as another user), migrated."""
    root = Path(tempfile.mkdtemp(prefix="li-chaos-"))
    postgres = EmbeddedPostgres(root)
    redis = EmbeddedRedis(root, persistent=False)
    try:
        await asyncio.to_thread(postgres.start)
        await asyncio.to_thread(redis.start)
        await create_database(postgres.admin_dsn(), DATABASE_NAME)
        database_url = postgres.database_url()
        engine = create_engine(Settings(database_url=database_url, redis_url="redis://unused"))
        try:
            await upgrade_to_head(engine)
        finally:
            await engine.dispose()
        yield ChaosStack(root, postgres, redis, database_url, "li_chaos_" + secrets.token_hex(16))
    finally:
        redis.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float, what: str, every: float = 0.1
) -> Any:
    """Poll `check` until it returns something truthy (returned), failing after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(every)


async def finished_iteration(http: httpx.AsyncClient, location: str, timeout: float) -> Any:
    """Poll an iteration (its Location) until it succeeded or failed; returns it."""

    async def done() -> Any:
        iteration = (await http.get(location.removeprefix("/api/v1"))).json()
        return iteration if iteration["status"] in ("succeeded", "failed") else None

    return await eventually(done, timeout=timeout, what=f"iteration {location} to finish")
