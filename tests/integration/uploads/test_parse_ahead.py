"""A CSV ledger is parsed while its upload still arrives (iterations/parse_ahead.py), and the
iteration's run starts from what was parsed; whenever that head start does not apply (options
sent after the file, a failed or stalled upload, a parse held by another worker) the run parses
the file itself, with the same result."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from httpx import AsyncClient, Response

from app.adapters.postgres import ledger_store
from app.adapters.postgres.tables import ledgers, movement_batches
from app.api.state import app_state
from app.domain.ledger.format import LedgerOptions
from app.domain.ledger.inspect import inspect_ledger
from app.domain.ledger.reader import iter_movement_batches
from app.services.iterations import parse_ahead
from app.services.uploads import store as upload_store
from tests.conftest import KeyMaker, Worker, bearer
from tests.helpers import API, create_closing, get_json

# Balanced two-movement vouchers; a few rows with a wrong date or amount, so that invalid rows
# and their reasons go through the head start too. About 6 MiB: six 1 MiB blocks.
ROW = "2026-10-{day:02d},V{n},{account},{amount},0\n2026-10-{day:02d},V{n},4101,0,{amount}\n"
HEADER = "fecha,comprobante,cuenta,debe,haber\n"


def _ledger(decimal: str = ".") -> bytes:
    rows = []
    for n in range(90_000):
        amount = f"{n}{decimal}50" if n % 5000 else "12x"
        day = 32 if n == 777 else 1 + n % 28
        rows.append(ROW.format(day=day, n=n, account="1101", amount=amount))
    return (HEADER + "".join(rows)).encode()


BOUNDARY = "parse-ahead-test"
PIECE = 128 * 1024


def _part(name: str, value: str) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
    ).encode()


async def _body(
    ledger: bytes,
    fields: dict[str, str],
    *,
    after: dict[str, str] | None = None,
    pause: float = 0.01,
    stall_at: int | None = None,
    stall: float = 0.0,
    cut_at: int | None = None,
) -> AsyncIterator[bytes]:
    """A multipart body sent in pieces: `fields` before the file, `after` behind it; it may
    stall at a byte of the file, or end there without its closing boundary."""
    yield b"".join(_part(name, value) for name, value in fields.items())
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="ledger.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    for at in range(0, len(ledger), PIECE):
        if cut_at is not None and at >= cut_at:
            return
        if stall_at is not None and at <= stall_at < at + PIECE:
            await asyncio.sleep(stall)
        yield ledger[at : at + PIECE]
        await asyncio.sleep(pause)
    yield b"\r\n" + b"".join(_part(name, value) for name, value in (after or {}).items())
    yield f"--{BOUNDARY}--\r\n".encode()


@pytest.fixture
async def outcomes(monkeypatch: pytest.MonkeyPatch, run_worker: Worker) -> list[str]:
    """What each parse ahead job of the test returned (jobs queued before it are run first)."""
    await run_worker()
    seen: list[str] = []
    real = parse_ahead.parse_arriving

    async def recording(*args: Any) -> str:
        outcome = await real(*args)
        seen.append(outcome)
        return outcome

    monkeypatch.setattr(parse_ahead, "parse_arriving", recording)
    monkeypatch.setattr(upload_store, "MAX_WAITING_BLOCKS", 1)
    return seen


async def _upload_with_worker(
    app: FastAPI,
    client: AsyncClient,
    key: str,
    closing_id: str,
    body: AsyncIterator[bytes],
    run_worker: Worker,
) -> Response:
    """POST the body; once its first blocks are stored, a worker runs beside it (until the
    queue is empty)."""
    posting = asyncio.create_task(
        client.post(
            f"{API}/closings/{closing_id}/ledger",
            content=body,
            headers={
                **bearer(key),
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            },
        )
    )
    engine = app_state(app).resources.engine
    while not posting.done():
        async with engine.connect() as conn:
            receiving = await conn.scalar(
                sa.select(sa.func.count()).where(
                    ledgers.c.closing_id == closing_id, ledgers.c.receiving
                )
            )
        if receiving:
            break
        await asyncio.sleep(0.01)
    worker = asyncio.create_task(run_worker())
    response = await posting
    await asyncio.wait_for(worker, timeout=120)
    return response


async def _parsed_like_the_file(
    app: FastAPI,
    client: AsyncClient,
    key: str,
    closing_id: str,
    response: Response,
    run_worker: Worker,
    expected: pl.DataFrame,
) -> dict[str, Any]:
    """The upload's iteration succeeded with exactly the movements of the file; returned."""
    assert response.status_code == 202, response.text
    await run_worker()  # the burst worker may have ended before the upload did
    iteration = await get_json(client, key, response.headers["Location"].removeprefix(API))
    assert iteration["status"] == "succeeded", iteration
    assert (await _stored_movements(app, closing_id)).equals(expected)
    return dict(iteration)


async def _stored_movements(app: FastAPI, closing_id: str) -> pl.DataFrame:
    async with app_state(app).resources.engine.connect() as conn:
        ledger_id = await conn.scalar(
            sa.select(ledgers.c.id).where(ledgers.c.closing_id == closing_id, ~ledgers.c.receiving)
        )
        parts = [
            pl.read_parquet(io.BytesIO(data))
            async for data in ledger_store.iter_batch_bytes(conn, ledger_id)
        ]
    return pl.concat(parts)


def _parsed_here(ledger: bytes, options: LedgerOptions, tmp_path: Path) -> pl.DataFrame:
    path = tmp_path / "ledger.csv"
    path.write_bytes(ledger)
    layout = inspect_ledger(path, options)
    return pl.concat(iter_movement_batches(path, layout))


@pytest.mark.parametrize(
    "kept",
    [
        pytest.param(parse_ahead.KEEP_SECONDS, id="taken-by-the-run-of-the-same-worker"),
        # As for a run in another worker: the parse is not in its memory, only stored.
        pytest.param(0.0, id="read-back-from-postgres"),
    ],
)
async def test_a_ledger_is_parsed_while_it_arrives_and_its_run_uses_that(
    app: FastAPI,
    client: AsyncClient,
    make_key: KeyMaker,
    run_worker: Worker,
    outcomes: list[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    kept: float,
) -> None:
    monkeypatch.setattr(parse_ahead, "KEEP_SECONDS", kept)
    ledger = _ledger()
    key = await make_key("analyst")
    closing = await create_closing(client, key)
    body = _body(ledger, {"decimal_separator": "."})
    response = await _upload_with_worker(app, client, key, closing.id, body, run_worker)

    assert outcomes == ["parsed"]
    assert not parse_ahead._parses  # taken by the run, or dropped
    expected = _parsed_here(ledger, LedgerOptions(decimal_separator="."), tmp_path)
    iteration = await _parsed_like_the_file(
        app, client, key, closing.id, response, run_worker, expected
    )
    assert iteration["movements_processed"] == 180_000
    assert iteration["parse"]["rows_read"] == 180_000
    assert iteration["parse"]["decimal_separator"] == "."
    assert expected.filter(pl.col("invalid_field").is_not_null()).height == 38  # amounts, dates
    statistics = (await get_json(client, key, f"/closings/{closing.id}/incidences"))["statistics"]
    assert (statistics["movements_total"], statistics["movements_rejected"]) == (180_000, 38)
    # Debit and credit over the valid rows: sum of n + 0.50 for each voucher with a good amount.
    good = [n for n in range(90_000) if n % 5000 and n != 777]
    assert statistics["debit_total"] == statistics["credit_total"]
    assert Decimal(statistics["debit_total"]) == sum(Decimal(n) + Decimal("0.5") for n in good)


async def test_options_sent_after_the_file_leave_the_parse_to_the_run(
    app: FastAPI,
    client: AsyncClient,
    make_key: KeyMaker,
    run_worker: Worker,
    outcomes: list[str],
    tmp_path: Path,
) -> None:
    ledger = _ledger(decimal=",")
    key = await make_key("analyst")
    closing = await create_closing(client, key)
    body = _body(ledger, {}, after={"decimal_separator": ","})
    response = await _upload_with_worker(app, client, key, closing.id, body, run_worker)

    # Parsed ahead with the separator detected; accepted with "," given: not the same layout.
    assert outcomes == ["not parsed: left to the run"]
    expected = _parsed_here(ledger, LedgerOptions(decimal_separator=","), tmp_path)
    iteration = await _parsed_like_the_file(
        app, client, key, closing.id, response, run_worker, expected
    )
    assert iteration["parse"]["decimal_separator"] == ","
    assert iteration["parse"]["decimal_separator_detected"] is False


async def test_a_failed_upload_stops_its_parse_and_leaves_nothing(
    app: FastAPI,
    client: AsyncClient,
    make_key: KeyMaker,
    run_worker: Worker,
    outcomes: list[str],
) -> None:
    key = await make_key("analyst")
    closing = await create_closing(client, key)
    body = _body(_ledger(), {}, pause=0.05, cut_at=4 * 1024 * 1024)
    response = await _upload_with_worker(app, client, key, closing.id, body, run_worker)
    assert response.status_code == 400, response.text  # no closing boundary

    assert outcomes == ["not parsed: left to the run"]
    async with app_state(app).resources.engine.connect() as conn:
        left = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(movement_batches.join(ledgers))
            .where(ledgers.c.closing_id == closing.id)
        )
        rows = await conn.scalar(
            sa.select(sa.func.count()).where(ledgers.c.closing_id == closing.id)
        )
    assert (left, rows) == (0, 0)
    assert not parse_ahead._parses


async def test_a_stalled_upload_is_left_to_its_run(
    app: FastAPI,
    client: AsyncClient,
    make_key: KeyMaker,
    run_worker: Worker,
    outcomes: list[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setattr(parse_ahead, "STALL_SECONDS", 0.3)
    ledger = _ledger()
    key = await make_key("analyst")
    closing = await create_closing(client, key)
    body = _body(ledger, {}, stall_at=3 * 1024 * 1024, stall=1.5)
    response = await _upload_with_worker(app, client, key, closing.id, body, run_worker)

    assert outcomes == ["not parsed: left to the run"]
    expected = _parsed_here(ledger, LedgerOptions(), tmp_path)
    await _parsed_like_the_file(app, client, key, closing.id, response, run_worker, expected)


async def test_a_run_waits_for_a_parse_ahead_held_elsewhere(app: FastAPI) -> None:
    """A parse ahead in another worker holds the ledger's lock: the run waits for its end."""
    engine = app_state(app).resources.engine
    ledger_id = uuid.uuid4()
    async with engine.connect() as held, held.begin():
        await held.execute(sa.select(sa.func.pg_advisory_xact_lock(parse_ahead._key(ledger_id))))
        waiting = asyncio.create_task(parse_ahead.wait_for(engine, ledger_id, _no_progress))
        await asyncio.sleep(0.3)
        assert not waiting.done()
    assert await asyncio.wait_for(waiting, timeout=5) is None


def _no_progress(rows: int, read: int) -> None:
    raise AssertionError("only a parse of this process reports its progress")


async def test_a_run_waiting_for_a_parse_of_its_worker_shows_how_far_it_got(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parse_ahead, "PROGRESS_SECONDS", 0.05)
    engine = app_state(app).resources.engine
    ledger_id = uuid.uuid4()
    parse = parse_ahead._Parse(asyncio.get_running_loop().create_future())
    parse.advance(1_000, 0.0)
    parse.bytes_read = lambda: 65_536
    monkeypatch.setitem(parse_ahead._parses, ledger_id, parse)
    seen: list[tuple[int, int]] = []
    waiting = asyncio.create_task(
        parse_ahead.wait_for(engine, ledger_id, lambda *done: seen.append(done))
    )
    await asyncio.sleep(0.2)
    parse.advance(2_000, 0.0)
    await asyncio.sleep(0.2)
    parse_ahead._parses.pop(ledger_id)  # as a parse that ends without a result does
    parse.result.set_result(None)
    assert await asyncio.wait_for(waiting, timeout=5) is None
    assert seen[0] == (1_000, 65_536) and seen[-1] == (2_000, 65_536)


async def test_with_parse_while_uploading_off_the_run_parses(
    app: FastAPI,
    client: AsyncClient,
    make_key: KeyMaker,
    run_worker: Worker,
    outcomes: list[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    resources = app_state(app).resources
    off = resources.settings.model_copy(update={"parse_while_uploading": False})
    monkeypatch.setattr(resources, "settings", off)
    ledger = _ledger()
    key = await make_key("analyst")
    closing = await create_closing(client, key)
    body = _body(ledger, {})
    response = await _upload_with_worker(app, client, key, closing.id, body, run_worker)

    assert outcomes == []  # no job was queued
    expected = _parsed_here(ledger, LedgerOptions(), tmp_path)
    await _parsed_like_the_file(app, client, key, closing.id, response, run_worker, expected)


async def test_a_worker_takes_one_parse_ahead_at_a_time(app: FastAPI) -> None:
    """Two jobs of one worker starting together: the second finds the first's place taken,
    even before the first has reached Postgres (a worker runs two jobs at once)."""
    engine = app_state(app).resources.engine
    first, second = await asyncio.gather(
        parse_ahead.parse_arriving(engine, uuid.uuid4(), "a.csv", LedgerOptions()),
        parse_ahead.parse_arriving(engine, uuid.uuid4(), "b.csv", LedgerOptions()),
    )
    assert first == "skipped: the upload has ended"  # no such upload
    assert second == "skipped: this worker holds another parse ahead"
    assert not parse_ahead._parses
