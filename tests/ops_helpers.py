"""Helpers of the operations tests: separate applications, key prefixes, migrated databases."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr

from app.main import create_app
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
    engine = create_engine(Settings(database_url=url, redis_url="redis://unused"), pool_size=1)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()
    return url
