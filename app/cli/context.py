"""What every CLI command needs: concrete server URLs (embedded servers standing in for unset
ones), a database connection, and the schema at its head."""

from __future__ import annotations

import argparse
import asyncio
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from app.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")


@contextmanager
def resolved(settings: Settings, *, persistent: bool = True) -> Iterator[Settings]:
    """Settings with concrete URLs: embedded servers under DATA_DIR stand in for unset ones."""
    if not settings.embedded:
        yield settings
        return
    warnings.filterwarnings("ignore", module="platformdirs")
    from app.embedded import embedded_servers

    with embedded_servers(
        settings.data_dir,
        postgres=settings.database_url is None,
        redis=settings.redis_url is None,
        persistent=persistent,
    ) as urls:
        yield settings.with_urls(
            settings.database_url.get_secret_value()
            if settings.database_url
            else urls.database_url,
            settings.redis_url.get_secret_value() if settings.redis_url else urls.redis_url,
        )


async def migrate_database(settings: Settings) -> None:
    from app.migrations import upgrade_to_head
    from app.resources import create_engine

    engine = create_engine(settings, connections=2)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()


async def with_connection(settings: Settings, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    from app.resources import create_engine

    engine = create_engine(settings, connections=2)
    try:
        async with engine.begin() as conn:
            return await work(conn)
    finally:
        await engine.dispose()


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    with resolved(settings) as concrete:
        asyncio.run(migrate_database(concrete))
    print("database is at the migration head")
    return 0


def register(commands: Any) -> None:
    """The `migrate` subcommand."""
    migrate = commands.add_parser(
        "migrate", help="upgrade the database schema to the newest migration"
    )
    migrate.set_defaults(handler=cmd_migrate)
