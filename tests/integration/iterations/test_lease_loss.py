"""A job that loses its lease stops, and writes nothing more: its lease stolen mid-parse (the
iteration taken over by another attempt), its next write is refused and its lease loop cancels
it; a job ending its own iteration is not mistaken for one that lost it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from httpx import AsyncClient

from app.adapters.postgres.tables import iterations, ledgers, movement_batches
from app.api.state import app_state
from app.resources import Resources
from app.services.iterations import claims, parsing
from app.services.iterations import run as processing
from app.settings import Settings
from tests.conftest import KeyMaker
from tests.helpers import create_closing, upload

LEASE_SECONDS = 1.2  # renewed every 0.2 s
BATCH_ROWS = 500
SECONDS_PER_BATCH = 0.3
LEDGER = b"fecha,comprobante,cuenta,glosa,debe,haber\n" + b"".join(
    b"2026-10-01,V%d,1101,x,5,0\n2026-10-01,V%d,2101,x,0,5\n" % (n, n) for n in range(2500)
)


@pytest.fixture
async def resources(settings: Settings) -> AsyncIterator[Resources]:
    """A worker's resources with a short lease."""
    built = Resources.build(settings.model_copy(update={"iteration_lease_seconds": LEASE_SECONDS}))
    try:
        yield built
    finally:
        await built.aclose()


@pytest.fixture
def slow_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parse in small batches, each taking a while: a parse that can be caught halfway."""
    real = parsing.iter_movement_batches

    def slow(source: Any, layout: Any, **options: Any) -> Iterator[pl.DataFrame]:
        for batch in real(source, layout, batch_rows=BATCH_ROWS, **options):
            time.sleep(SECONDS_PER_BATCH)
            yield batch

    monkeypatch.setattr(parsing, "iter_movement_batches", slow)


async def _queued_iteration(app: FastAPI, client: AsyncClient, key: str) -> tuple[uuid.UUID, Any]:
    closing = await create_closing(client, key)
    assert (await upload(client, key, closing.id, LEDGER)).status_code == 202
    async with app_state(app).require_resources().engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(iterations.c.id, iterations.c.ledger_id).where(
                    iterations.c.closing_id == closing.id
                )
            )
        ).one()
    return row.id, row.ledger_id


async def _batches(resources: Resources, ledger_id: uuid.UUID) -> int:
    async with resources.engine.connect() as conn:
        count = await conn.scalar(
            sa.select(sa.func.count()).where(movement_batches.c.ledger_id == ledger_id)
        )
    return int(count or 0)


async def _steal(resources: Resources, iteration_id: uuid.UUID) -> claims.Claim:
    """What another worker does once the lease has run out: claim the iteration anew."""
    async with resources.engine.begin() as conn:
        await conn.execute(
            sa.update(iterations)
            .where(iterations.c.id == iteration_id)
            .values(heartbeat_at=sa.func.to_timestamp(0))
        )
    thief = await claims.claim(resources.engine, iteration_id, LEASE_SECONDS)
    assert thief is not None
    return thief


@pytest.mark.usefixtures("slow_parse")
@pytest.mark.parametrize("renewing", [True, False], ids=["lease-loop", "write-guard-alone"])
async def test_a_lease_stolen_mid_parse_stops_the_job_and_its_writes(
    app: FastAPI,
    client: AsyncClient,
    make_key: KeyMaker,
    resources: Resources,
    renewing: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not renewing:  # no renewal within the test: only the guard on its writes can stop it
        monkeypatch.setattr(claims, "RENEWALS_PER_LEASE", 0.01)
    iteration_id, ledger_id = await _queued_iteration(app, client, await make_key("analyst"))
    job = asyncio.create_task(processing.run_iteration(resources, iteration_id))
    deadline = time.monotonic() + 30
    while await _batches(resources, ledger_id) < 2:  # 2 of 10 batches stored
        assert time.monotonic() < deadline and not job.done()
        await asyncio.sleep(0.05)

    thief = await _steal(resources, iteration_id)
    stolen_at, stored = time.monotonic(), await _batches(resources, ledger_id)
    outcome = await asyncio.wait_for(job, timeout=10)
    # Stopped within a renewal or a batch, well before its parse (3 s in all) could end.
    assert outcome == "abandoned: the claim was no longer ours"
    assert time.monotonic() - stolen_at < 1.0
    await asyncio.sleep(2 * SECONDS_PER_BATCH)  # its parsing thread ends its batch meanwhile
    assert await _batches(resources, ledger_id) == stored  # no batch written after the steal
    async with resources.engine.connect() as conn:
        parsed_at = await conn.scalar(
            sa.select(ledgers.c.parsed_at).where(ledgers.c.id == ledger_id)
        )
        row = (
            await conn.execute(
                sa.select(iterations.c.status, iterations.c.attempts).where(
                    iterations.c.id == iteration_id
                )
            )
        ).one()
    assert parsed_at is None
    assert (row.status, row.attempts) == ("running", thief.attempt)  # the thief's, untouched
    await claims.fail(resources.engine, thief, {"detail": "test over"})


async def test_the_lease_loop_cancels_a_busy_job_and_spares_one_that_ended_itself(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker, resources: Resources
) -> None:
    key = await make_key("analyst")
    iteration_id, _ = await _queued_iteration(app, client, key)
    claimed = await claims.claim(resources.engine, iteration_id, LEASE_SECONDS)
    assert claimed is not None
    started = time.monotonic()
    with pytest.raises(claims.LeaseLost):
        async with claims.lease(resources.engine, claimed, LEASE_SECONDS):
            thief = await _steal(resources, iteration_id)
            await asyncio.sleep(30)  # busy, writing nothing: only the lease loop can stop it
    assert time.monotonic() - started < 1.0
    # The thief ends the iteration itself, then keeps going past several renewals: no loss.
    async with claims.lease(resources.engine, thief, LEASE_SECONDS):
        await claims.fail(resources.engine, thief, {"detail": "test over"})
        await asyncio.sleep(3 * LEASE_SECONDS / claims.RENEWALS_PER_LEASE)
    with pytest.raises(claims.LeaseLost):
        async with claims.owned_transaction(resources.engine, claimed):
            pytest.fail("a lost claim must not get a transaction")
