"""A run that fails while its ledger streams from Postgres into the parser ends `failed`
promptly: the reading thread, which may be waiting for a chunk the event loop fetches, is
stopped without the two waiting for each other, and nothing of the partial parse is served."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from httpx import AsyncClient

from app.adapters.postgres import ledger_store
from app.adapters.postgres.tables import iterations, ledgers, snapshots
from app.api.state import app_state
from tests.conftest import KeyMaker, Worker
from tests.helpers import create_closing, upload

# Several parse batches and stored chunks: the failure comes while more are being read.
LEDGER = b"fecha,comprobante,cuenta,glosa,debe,haber\n" + b"".join(
    b"2026-10-%02d,V%d,1101,pago %d,%d.50,0\n2026-10-%02d,V%d,2101,pago %d,0,%d.50\n"
    % (1 + n % 28, n, n, n, 1 + n % 28, n, n, n)
    for n in range(300_000)
)


async def test_a_storage_failure_mid_parse_fails_the_iteration_without_hanging(
    app: FastAPI,
    client: AsyncClient,
    make_key: KeyMaker,
    run_worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = ledger_store.store_batch
    stored: list[int] = []

    async def fail_on_the_second(*args: Any, **kwargs: Any) -> None:
        stored.append(1)
        if len(stored) == 2:
            raise RuntimeError("disk full")
        await real(*args, **kwargs)

    monkeypatch.setattr(ledger_store, "store_batch", fail_on_the_second)
    real_chunks = ledger_store.chunks_from

    async def slow_chunks(*args: Any) -> Any:
        await asyncio.sleep(0.2)  # the reading thread is most likely waiting for one of these
        return await real_chunks(*args)

    monkeypatch.setattr(ledger_store, "chunks_from", slow_chunks)
    monkeypatch.setattr(ledger_store, "_CHUNKS_PER_FETCH", 1)
    key = await make_key("analyst")
    closing = await create_closing(client, key)
    accepted = await upload(client, key, closing.id, LEDGER)
    assert accepted.status_code == 202, accepted.text

    await asyncio.wait_for(run_worker(), timeout=60)

    async with app_state(app).resources.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(iterations.c.status, iterations.c.error, ledgers.c.parsed_at)
                .join(ledgers, ledgers.c.id == iterations.c.ledger_id)
                .where(iterations.c.closing_id == closing.id)
            )
        ).one()
        served = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(snapshots)
            .where(snapshots.c.closing_id == closing.id)
        )
    assert len(stored) == 2
    assert row.status == "failed" and row.error["status"] == 500, row
    assert row.parsed_at is None and served == 0  # the partial parse counts for nothing
