"""Alembic environment: async engine, URL handed over by app.migrations (never read here)."""

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from app.adapters.postgres.tables import metadata
from app.settings import get_settings

target_metadata = metadata


def _run_sync(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection, target_metadata=target_metadata, compare_server_default=True
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    """Run with a connection given by the caller, or open one on the configured URL."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run_sync(connection)
        return
    url = context.config.attributes.get("database_url")
    if url is None:  # the plain `alembic` command of a developer: use the service settings
        from app.resources import database_url

        url = database_url(get_settings())
    asyncio.run(_run_async(url))


if context.is_offline_mode():
    raise SystemExit(
        "offline (--sql) migrations are not supported; run `ledger-incidences migrate`"
    )
run_migrations_online()
