"""An upload's file is written to Postgres while it is received, a few blocks per transaction:
an accepted one is whole and in order, a failed one leaves nothing, and what a dead API process
left behind is removed by the cleanup job."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable

import pytest
import sqlalchemy as sa
import zstandard
from fastapi import FastAPI
from httpx import AsyncClient

from app.adapters.postgres.ledger_store import FILE_CHUNK_BYTES
from app.adapters.postgres.tables import ledger_file_chunks, ledgers
from app.api.state import app_state
from app.services.uploads import store as upload_store
from tests.conftest import KeyMaker, bearer
from tests.helpers import API, assert_problem, create_closing, get_json, upload

# Balanced vouchers of two movements: few incidences, so the worker's run stays short.
ROWS = b"2026-10-01,V%d,1101,%d.50,0\n2026-10-01,V%d,4101,0,%d.50\n"
# About 11 MiB: eleven full 1 MiB blocks and a tail, so several write transactions happen
# while the body is still arriving (two blocks each, below).
LEDGER = b"fecha,comprobante,cuenta,debe,haber\n" + b"".join(
    ROWS % (n, n, n, n) for n in range(165_000)
)


@pytest.fixture(autouse=True)
def small_write_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upload_store, "MAX_WAITING_BLOCKS", 2)


async def _ledger_rows(app: FastAPI, closing_id: str) -> list[sa.Row]:
    async with app_state(app).resources.engine.connect() as conn:
        return list(
            await conn.execute(
                sa.select(ledgers.c.id, ledgers.c.receiving, ledgers.c.sha256).where(
                    ledgers.c.closing_id == closing_id
                )
            )
        )


async def test_an_accepted_upload_is_stored_whole_and_in_order(
    app: FastAPI,
    client: AsyncClient,
    make_key: KeyMaker,
    run_worker: Callable[[], Awaitable[None]],
) -> None:
    blocks = -(-len(LEDGER) // FILE_CHUNK_BYTES)
    assert blocks > 10
    key = await make_key("analyst")
    closing = await create_closing(client, key)
    response = await upload(client, key, closing.id, LEDGER)
    assert response.status_code == 202, response.text

    [row] = await _ledger_rows(app, closing.id)
    assert row.receiving is False
    assert row.sha256 == hashlib.sha256(LEDGER).hexdigest()
    async with app_state(app).resources.engine.connect() as conn:
        chunks = (
            await conn.execute(
                sa.select(ledger_file_chunks.c.seq, ledger_file_chunks.c.data)
                .where(ledger_file_chunks.c.ledger_id == row.id)
                .order_by(ledger_file_chunks.c.seq)
            )
        ).all()
    assert [c.seq for c in chunks] == list(range(blocks))
    decompress = zstandard.ZstdDecompressor().decompress
    assert b"".join(decompress(c.data) for c in chunks) == LEDGER

    await run_worker()  # and the worker reads it back: every movement
    iteration = await get_json(client, key, response.headers["Location"].removeprefix(API))
    assert iteration["status"] == "succeeded"
    assert iteration["movements_processed"] == LEDGER.count(b"\n") - 1


@pytest.mark.parametrize("failure", ["truncated", "missing column"])
async def test_a_failed_upload_leaves_nothing_stored(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker, failure: str
) -> None:
    key = await make_key("analyst")
    closing = await create_closing(client, key)
    if failure == "truncated":  # blocks were written before the body turned out incomplete
        boundary = "staged-test-boundary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="l.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        response = await client.post(
            f"{API}/closings/{closing.id}/ledger",
            content=head + LEDGER,
            headers={**bearer(key), "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert_problem(response, 400)
    else:  # the whole file was written before inspection refused it
        no_voucher = LEDGER.replace(b"comprobante,", b"", 1)
        assert_problem(await upload(client, key, closing.id, no_voucher), 422)
    assert await _ledger_rows(app, closing.id) == []


async def test_the_cleanup_job_removes_only_abandoned_uploads(
    app: FastAPI,
    client: AsyncClient,
    make_key: KeyMaker,
    run_worker: Callable[[], Awaitable[None]],
) -> None:
    key = await make_key("analyst")
    closing = await create_closing(client, key)
    assert (await upload(client, key, closing.id, LEDGER[:5000])).status_code == 202
    await run_worker()  # its job done: no queued job is left to the tests that follow
    [accepted] = await _ledger_rows(app, closing.id)
    engine = app_state(app).resources.engine
    # A receiving row of an API process that died a day ago, and one of an upload under way.
    stale, live = uuid.uuid4(), uuid.uuid4()
    async with engine.begin() as conn:
        for ledger_id, age in ((stale, "25 hours"), (live, "1 minute")):
            await conn.execute(
                sa.insert(ledgers).values(
                    id=ledger_id,
                    closing_id=closing.id,
                    size_bytes=0,
                    sha256="",
                    layout={},
                    receiving=True,
                    uploaded_at=sa.func.now() - sa.text(f"interval '{age}'"),
                )
            )
            await conn.execute(
                sa.insert(ledger_file_chunks).values(ledger_id=ledger_id, seq=0, data=b"x")
            )
        # An accepted ledger is never removed, however old.
        await conn.execute(
            sa.update(ledgers)
            .where(ledgers.c.id == accepted.id)
            .values(uploaded_at=sa.func.now() - sa.text("interval '30 days'"))
        )

    assert await upload_store.purge_abandoned(engine) == 1
    remaining = {row.id for row in await _ledger_rows(app, closing.id)}
    assert remaining == {accepted.id, live}
    async with engine.connect() as conn:
        orphans = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(ledger_file_chunks)
            .where(ledger_file_chunks.c.ledger_id == stale)
        )
    assert orphans == 0


async def test_an_upload_whose_stored_part_was_removed_is_refused(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cleanup job took the row of an upload that lasted over a day: a clear 409."""
    finish = upload_store.StagedFile.finish

    async def finish_then_lose(self: upload_store.StagedFile) -> None:
        await finish(self)
        async with app_state(app).resources.engine.begin() as conn:
            await conn.execute(sa.delete(ledgers).where(ledgers.c.id == self.ledger_id))

    monkeypatch.setattr(upload_store.StagedFile, "finish", finish_then_lose)
    key = await make_key("analyst")
    closing = await create_closing(client, key)
    refused = await upload(client, key, closing.id, LEDGER[:5000])
    assert "send it again" in assert_problem(refused, 409)["detail"]
    assert await _ledger_rows(app, closing.id) == []
    latest = await get_json(client, key, f"/closings/{closing.id}")
    assert latest["latest_iteration"] is None
