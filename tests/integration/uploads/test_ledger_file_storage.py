"""The uploaded file is stored zstd-compressed, and files stored before compression (migration
0002 left them marked 'none') are still read back byte for byte."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from fastapi import FastAPI
from httpx import AsyncClient

from app.adapters.postgres import ledger_store
from app.adapters.postgres.tables import ledger_file_chunks, ledgers, movement_batches
from app.api.state import app_state
from tests.conftest import KeyMaker, bearer
from tests.helpers import API, create_closing, upload

# Enough rows for several 1 MiB chunks, so that chunk order matters on the way back.
LEDGER = b"fecha,comprobante,cuenta,debe,haber\n" + b"".join(
    b"2026-10-%02d,V%d,1101,%d.25,0\n2026-10-%02d,V%d,2101,0,%d.25\n"
    % (1 + n % 28, n, n, 1 + n % 28, n, n)
    for n in range(60_000)
)


async def _stored(app: FastAPI, closing_id: str) -> sa.Row:
    async with app_state(app).resources.engine.connect() as conn:
        return (
            await conn.execute(
                sa.select(
                    ledgers.c.id,
                    ledgers.c.size_bytes,
                    ledgers.c.sha256,
                    ledgers.c.file_compression,
                    sa.select(sa.func.sum(sa.func.length(ledger_file_chunks.c.data)))
                    .where(ledger_file_chunks.c.ledger_id == ledgers.c.id)
                    .scalar_subquery()
                    .label("stored_bytes"),
                ).where(ledgers.c.closing_id == closing_id)
            )
        ).one()


async def test_uploads_are_stored_compressed_and_uncompressed_ones_still_parse(
    app: FastAPI,
    client: AsyncClient,
    make_key: KeyMaker,
    run_worker: Callable[[], Awaitable[None]],
) -> None:
    key = await make_key("analyst")
    closing = await create_closing(client, key, name="Stored")
    assert (await upload(client, key, closing.id, LEDGER)).status_code == 202
    await run_worker()
    stored = await _stored(app, closing.id)
    assert stored.file_compression == "zstd"
    assert stored.size_bytes == len(LEDGER)
    assert stored.sha256 == hashlib.sha256(LEDGER).hexdigest()
    assert stored.stored_bytes < len(LEDGER) / 3
    first = await client.get(f"{API}/closings/{closing.id}/incidences", headers=bearer(key))

    # A ledger as stored before compression: raw chunks, marked 'none', not parsed yet.
    async with app_state(app).resources.engine.begin() as conn:
        await conn.execute(
            sa.delete(ledger_file_chunks).where(ledger_file_chunks.c.ledger_id == stored.id)
        )
        await conn.execute(
            sa.insert(ledger_file_chunks),
            [
                {"ledger_id": stored.id, "seq": seq, "data": LEDGER[start : start + 2**20]}
                for seq, start in enumerate(range(0, len(LEDGER), 2**20))
            ],
        )
        await conn.execute(
            sa.delete(movement_batches).where(movement_batches.c.ledger_id == stored.id)
        )
        await conn.execute(
            sa.update(ledgers)
            .where(ledgers.c.id == stored.id)
            .values(file_compression="none", parsed_at=None)
        )
    reprocess = f"{API}/closings/{closing.id}/reprocess"
    assert (await client.post(reprocess, json={}, headers=bearer(key))).status_code == 202
    await run_worker()
    second = await client.get(f"{API}/closings/{closing.id}/incidences", headers=bearer(key))
    assert second.json()["iteration"] == 2
    assert second.json()["statistics"] == first.json()["statistics"]
    assert second.json()["statistics"]["movements_total"] == 120_000


async def test_a_drill_down_reads_only_the_batches_holding_its_lines(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker
) -> None:
    key = await make_key("analyst")
    closing = await create_closing(client, key, name="Batches")
    assert (await upload(client, key, closing.id, LEDGER[:2000])).status_code == 202
    ledger_id = (await _stored(app, closing.id)).id
    async with app_state(app).resources.engine.begin() as conn:
        await conn.execute(
            sa.insert(movement_batches),
            [
                {
                    "ledger_id": ledger_id,
                    "first_line": first,
                    "last_line": first + 9,
                    "row_count": 10,
                    "data": name,
                }
                for first, name in ((2, b"a"), (12, b"b"), (22, b"c"), (32, b"d"))
            ],
        )
        read = [data async for data in ledger_store.batches_holding(conn, ledger_id, [5, 22, 30])]
        assert read == [b"a", b"c"]
        assert [d async for d in ledger_store.batches_holding(conn, ledger_id, [])] == []
        assert [d async for d in ledger_store.batches_holding(conn, ledger_id, [41, 99])] == [b"d"]
