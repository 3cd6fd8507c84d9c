"""Helpers of the operations tests: separate applications, key prefixes, migrated databases."""

from __future__ import annotations

import asyncio
import secrets
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
import uvicorn
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr

from app.adapters.postgres.tables import clients, closings, iterations, ledgers, tenants
from app.adapters.redis import heartbeat
from app.api.state import app_state
from app.main import create_app
from app.metrics import CACHE_LOOKUPS, HTTP_LATENCY, HTTP_REQUESTS
from app.migrations import upgrade_to_head
from app.resources import create_engine
from app.settings import Settings
from tests.conftest import Databases

# Nothing listens on port 1 of loopback: connections are refused at once.
DEAD_POSTGRES = "postgresql+asyncpg://postgres:pg-secret-pw@127.0.0.1:1/ledger"
DEAD_REDIS = "redis://:redis-secret-pw@127.0.0.1:1/0"


def unique_prefix(settings: Settings, label: str) -> str:
    """A Redis key prefix under the suite's, that no other test uses."""
    return f"{settings.redis_key_prefix}-{label}-{secrets.token_hex(3)}"


def variant(settings: Settings, **update: Any) -> Settings:
    """The settings with `update` applied (URL strings become secrets)."""
    for name in ("database_url", "redis_url", "bootstrap_api_key"):
        if isinstance(update.get(name), str):
            update[name] = SecretStr(update[name])
    return settings.model_copy(update=update)


@asynccontextmanager
async def app_client(
    settings: Settings, **update: Any
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """A separate application (own lifespan and pools) for the updated settings, and a client."""
    application = create_app(variant(settings, **update))
    async with (
        LifespanManager(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://test") as http,
    ):
        yield application, http


async def migrated_database(databases: Databases, label: str) -> str:
    """A new database at the migration head; returns its URL."""
    url = await databases.create(label)
    engine = create_engine(Settings(database_url=url, redis_url="redis://unused"), connections=2)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()
    return url


@asynccontextmanager
async def healthy(
    settings: Settings, *, worker: bool = True, **update: Any
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """An app for the settings, with one live worker heartbeat unless worker=False."""
    async with app_client(settings, **update) as (application, http):
        redis, prefix = app_state(application).require_resources().redis, update["redis_key_prefix"]
        if worker:
            await heartbeat.beat(redis, prefix, "health-test-worker")
        try:
            yield application, http
        finally:
            if worker:
                await heartbeat.forget(redis, prefix, "health-test-worker")


async def insert_queued(engine: Any, count: int) -> uuid.UUID:
    """`count` closings of a new tenant, each with one queued iteration; returns the tenant."""
    async with engine.begin() as conn:
        tenant = await conn.scalar(
            sa.insert(tenants).values(name=f"health-{uuid.uuid4().hex}").returning(tenants.c.id)
        )
        client = await conn.scalar(
            sa.insert(clients).values(tenant_id=tenant, name="Backlog").returning(clients.c.id)
        )
        for month in range(1, count + 1):
            closing = await conn.scalar(
                sa.insert(closings)
                .values(tenant_id=tenant, client_id=client, period=f"2025-{month:02d}")
                .returning(closings.c.id)
            )
            ledger = await conn.scalar(
                sa.insert(ledgers)
                .values(closing_id=closing, size_bytes=1, sha256="0" * 64, layout={})
                .returning(ledgers.c.id)
            )
            await conn.execute(
                sa.insert(iterations).values(
                    closing_id=closing, number=1, ledger_id=ledger, trigger="initial"
                )
            )
    assert isinstance(tenant, uuid.UUID)
    return tenant


@asynccontextmanager
async def served(application: FastAPI) -> AsyncIterator[str]:
    """The application (lifespan already running) served over HTTP on a free loopback port, in
    this event loop, for clients in other threads or processes; yields its URL."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    config = uvicorn.Config(application, port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the server stopped before it started"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def count_lookups(hits: int, misses: int) -> None:
    """What the snapshot cache does on each read: count a hit or a miss."""
    CACHE_LOOKUPS.labels("snapshot", "hit").inc(hits)
    CACHE_LOOKUPS.labels("snapshot", "miss").inc(misses)
    CACHE_LOOKUPS.labels("snapshot", "bypass").inc(5)  # neither: not in the rate


def count_requests(route: str, ok: int, failed: int, seconds: float = 0.004) -> None:
    """What the metrics middleware does for each API request: count it, and time it."""
    HTTP_REQUESTS.labels("GET", route, "2xx").inc(ok)
    HTTP_REQUESTS.labels("GET", route, "5xx").inc(failed)
    for _ in range(ok + failed):
        HTTP_LATENCY.labels("GET", route).observe(seconds)
