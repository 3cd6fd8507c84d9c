"""The Postgres pool keeps every connection it opens: a burst above its resting size must not
turn into a new session per request (a backend forked, every statement prepared again)."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from app.resources import create_engine
from app.settings import Settings

BURST = 6


async def _backends(engine: sa.ext.asyncio.AsyncEngine) -> set[int]:
    """The backend of each of BURST connections held at the same time."""
    barrier = asyncio.Barrier(BURST)

    async def one() -> int:
        async with engine.connect() as conn:
            pid = await conn.scalar(sa.text("SELECT pg_backend_pid()"))
            await barrier.wait()  # all BURST are checked out together
            return int(pid)

    return set(await asyncio.gather(*(one() for _ in range(BURST))))


async def test_a_burst_reuses_the_connections_of_the_last_one(database_url: str) -> None:
    settings = Settings(database_url=database_url, redis_url="redis://unused")
    engine = create_engine(settings, connections=BURST)
    try:
        first = await _backends(engine)
        second = await _backends(engine)
    finally:
        await engine.dispose()
    assert len(first) == BURST
    assert second == first


async def test_the_pool_size_is_a_ceiling(database_url: str) -> None:
    settings = Settings(database_url=database_url, redis_url="redis://unused")
    engine = create_engine(settings, connections=2)
    held = [await engine.connect() for _ in range(2)]
    try:
        waiting = asyncio.ensure_future(engine.connect().start())
        await asyncio.sleep(0.2)
        assert not waiting.done()  # a third waits for one of the two to come back
        await held.pop().close()
        third = await asyncio.wait_for(waiting, 5)
        await third.close()
    finally:
        for conn in held:
            await conn.close()
        await engine.dispose()
