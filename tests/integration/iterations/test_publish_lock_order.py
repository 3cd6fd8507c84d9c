"""A publish and a reference-data change never wait for each other in a circle.

A change locks the closings it numbers new runs for, then the queued runs it joins. When its
statement began before a worker claimed one of those runs, Postgres still takes it to that row,
which the worker is publishing by then, and makes it wait for whatever lock the publish holds
there. The publish, in turn, waits for the closing's lock, which the change holds: it did hold
a share lock on its row (deadlocks under bench/load.py); now it holds a key-share lock only,
which the change's FOR NO KEY UPDATE does not wait for.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.adapters.postgres.tables import iterations
from app.adapters.postgres.tables import snapshots as snapshots_table
from app.api.state import app_state
from app.services.iterations import claims, coalesce
from app.services.iterations import publish as snapshots
from app.services.snapshot_cache.served import STATISTICS_WITH_REVIEWS
from app.services.tenancy.closings import lock_open_closing
from tests.integration.service_support import owned_closing, queue_iteration, second_closing


async def _waits_for_a_lock(engine: AsyncEngine, conn: AsyncConnection) -> None:
    """Return once `conn`'s backend waits for a lock."""
    pid = await conn.scalar(sa.select(sa.func.pg_backend_pid()))
    async with engine.connect() as probe:
        for _ in range(200):
            waiting = await probe.scalar(
                sa.text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                {"pid": pid},
            )
            if waiting == "Lock":
                return
            await probe.rollback()
            await asyncio.sleep(0.02)
    raise AssertionError(f"backend {pid} never waited for a lock")


async def test_a_change_joining_a_run_being_published_does_not_deadlock_with_it(
    app: FastAPI,
) -> None:
    engine = app_state(app).require_resources().engine
    owned = await owned_closing(app)
    other = await second_closing(app, owned.tenant_id, owned.client_id)
    # The change meets the closings' runs in id order: `first`'s, then `published`'s.
    first, published = sorted([owned.closing_id, other])
    held_run = await queue_iteration(app, owned.tenant_id, first)
    claimed_run = await queue_iteration(app, owned.tenant_id, published)

    async with engine.connect() as holder, engine.connect() as change:
        # Another request holds `first`'s queued run for a moment.
        await holder.execute(
            sa.select(iterations.c.id)
            .where(iterations.c.id == held_run["id"])
            .with_for_update(key_share=True)
        )
        # The change holds `published`'s closing, then starts joining both queued runs.
        await lock_open_closing(change, owned.tenant_id, published)
        joining = asyncio.create_task(
            coalesce.merge_into_queued(change, [first, published], "classification_updated")
        )
        await _waits_for_a_lock(engine, change)
        # Meanwhile a worker claims `published`'s run and publishes it: it waits for the closing.
        claimed = await claims.claim(engine, claimed_run["id"], lease_seconds=60)
        assert claimed is not None
        publishing = asyncio.create_task(
            snapshots.publish(
                engine,
                claimed,
                document=b'{"statistics":{' + STATISTICS_WITH_REVIEWS + b"0}}",
                content_hash="h",
                lines={},
                summary={},
                diff={},
            )
        )
        await asyncio.sleep(0.3)  # in the publish's wait for the closing
        assert not publishing.done()
        await holder.commit()  # the change goes on to `published`'s run, claimed since
        merged = await asyncio.wait_for(joining, timeout=10)
        await change.commit()
        published_snapshot = await asyncio.wait_for(publishing, timeout=10)

    assert [row.id for row in merged] == [held_run["id"]]  # the claimed run is left alone
    assert published_snapshot is not None
    async with engine.connect() as conn:
        status = await conn.scalar(
            sa.select(iterations.c.status).where(iterations.c.id == claimed_run["id"])
        )
        served = await conn.scalar(
            sa.select(snapshots_table.c.iteration_id).where(
                snapshots_table.c.closing_id == published
            )
        )
    assert status == "succeeded" and served == claimed_run["id"]
