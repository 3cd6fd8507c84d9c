"""Real Postgres and Redis for the suite: embedded servers by default, or the ones named by
TEST_DATABASE_URL / TEST_REDIS_URL. Each run creates its own database and Redis key prefix and
removes them afterwards; nothing it did not create is touched."""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import tempfile
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from app.api.state import app_state
from app.embedded import EmbeddedPostgres, EmbeddedRedis, create_database
from app.main import create_app
from app.migrations import upgrade_to_head
from app.resources import create_engine
from app.services.tenancy import api_keys
from app.settings import Settings

warnings.filterwarnings("ignore", module="platformdirs")

RUN_ID = secrets.token_hex(4)


@dataclass(frozen=True)
class Servers:
    """Where the suite's servers answer: an admin DSN for Postgres, and a Redis URL."""

    postgres_admin_dsn: str
    redis_url: str


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _sqlalchemy_url(admin_dsn: str, database: str) -> str:
    return (
        make_url(admin_dsn)
        .set(drivername="postgresql+asyncpg", database=database)
        .render_as_string(hide_password=False)
    )


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    """Start embedded servers for whatever TEST_*_URL does not name.

    Their data lives outside pytest's temp root: a concurrent pytest session resets that root
    to mode 0700, which would lock out Postgres (it runs as the `pgserver` user under root).
    """
    data_dir = Path(tempfile.mkdtemp(prefix="li-test-servers-"))
    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    database_url = os.environ.get("TEST_DATABASE_URL")
    redis_url = os.environ.get("TEST_REDIS_URL")
    try:
        if database_url:
            admin_dsn = _asyncpg_dsn(database_url)
        else:
            postgres = EmbeddedPostgres(data_dir)
            postgres.start()
            started.append(postgres)
            admin_dsn = postgres.admin_dsn()
        if not redis_url:
            redis = EmbeddedRedis(data_dir, persistent=False)
            redis.start()
            started.append(redis)
            redis_url = redis.url
        yield Servers(admin_dsn, redis_url)
    finally:
        for server in reversed(started):
            server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


class Databases:
    """Creates uniquely named databases on the test server and drops exactly those."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self.created: list[str] = []

    async def create(self, label: str) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        name = f"li_test_{RUN_ID}_{label}_{secrets.token_hex(2)}"
        await create_database(self.admin_dsn, name)
        self.created.append(name)
        return _sqlalchemy_url(self.admin_dsn, name)

    async def drop_all(self) -> None:
        """Drop the databases this run created (terminating their leftover sessions)."""
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            for name in self.created:
                await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    name,
                )
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        finally:
            await conn.close()


@pytest.fixture(scope="session")
async def databases(servers: Servers) -> AsyncIterator[Databases]:
    registry = Databases(servers.postgres_admin_dsn)
    yield registry
    await registry.drop_all()


@pytest.fixture(scope="session")
async def database_url(databases: Databases) -> str:
    """The suite's main database, migrated to head."""
    url = await databases.create("main")
    engine = create_engine(Settings(database_url=url, redis_url="redis://unused"), connections=2)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()
    return url


@pytest.fixture(scope="session")
async def redis_prefix(servers: Servers) -> AsyncIterator[str]:
    """This run's Redis key prefix; every key under it (and arq's keys of its jobs) is removed."""
    prefix = f"li-test-{RUN_ID}"
    yield prefix
    client = Redis.from_url(servers.redis_url)
    try:
        for pattern in (f"{prefix}*", f"arq:*{prefix}*"):
            async for key in client.scan_iter(match=pattern, count=500):
                await client.delete(key)
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def settings(
    servers: Servers, database_url: str, redis_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Settings pointing at the suite's servers, database and key prefix."""
    return Settings(
        database_url=database_url,
        redis_url=servers.redis_url,
        redis_key_prefix=redis_prefix,
        data_dir=tmp_path_factory.mktemp("data"),
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The application with its lifespan running."""
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """An HTTP client talking to the app in-process (ASGI)."""
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http:
        yield http


KeyMaker = Callable[..., Awaitable[str]]


@pytest.fixture(scope="session")
async def make_key(app: FastAPI) -> KeyMaker:
    """Create an API key for a fresh (or named) tenant; returns the key."""

    async def _make(role: str = "admin", tenant: str | None = None, name: str = "test") -> str:
        async with app_state(app).resources.engine.begin() as conn:
            return await api_keys.create_key(
                conn, tenant=tenant or f"tenant-{secrets.token_hex(4)}", role=role, name=name
            )

    return _make


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for a key."""
    return {"Authorization": f"Bearer {key}"}


# Runs the queued jobs to completion (the `run_worker` fixture, or `drain_queue` with settings).
Worker = Callable[[], Awaitable[None]]


async def drain_queue(settings: Settings) -> None:
    """Run an arq worker for these settings in burst mode: it processes every queued job, then
    returns."""
    from workers.settings import build_worker

    worker = build_worker(settings, burst=True, poll_delay=0.05, handle_signals=False)
    try:
        await worker.main()
    finally:
        await worker.close()


@pytest.fixture(scope="session")
def run_worker(settings: Settings) -> Worker:
    """Process every job queued for the suite's settings, then return."""
    return functools.partial(drain_queue, settings)
