"""Parsing a ledger's stored file into movement batches, each stored as soon as it is parsed.

Shared by an iteration's run (movements.py) and by the parse that starts while the upload is
still arriving (parse_ahead.py); each brings its own source of the file's bytes and its own
guarded transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.postgres import ledger_store
from app.adapters.postgres.tables import ledgers
from app.domain.ledger.format import LedgerLayout
from app.domain.ledger.reader import (
    NARROW_SCHEMA,
    ReadReport,
    SeparatorChanged,
    iter_movement_batches,
    narrow,
    parse_record,
)

logger = logging.getLogger(__name__)

# What iter_movement_batches reads, and the share of the file parsed once a batch is.
Source = tuple[Path | BinaryIO, Callable[[pl.DataFrame], float]]
OpenSource = Callable[[], AbstractAsyncContextManager[Source]]
# A transaction in which the caller may still write the ledger's batches.
Transaction = Callable[[], AbstractAsyncContextManager[AsyncConnection]]
# Called after each batch: movements parsed so far, share of the file parsed.
Progress = Callable[[int, float], None]


@dataclass(frozen=True)
class ParsedLedger:
    """A parsed ledger: its batches kept as local Parquet files, the narrow frame evaluation
    needs, and how the file was read."""

    files: list[Path]
    frame: pl.DataFrame
    layout: LedgerLayout  # with the decimal separator found, if it was detected
    report: ReadReport

    @property
    def parse(self) -> dict[str, Any]:
        """The ledger's and its iterations' `parse` (SPEC §3)."""
        return parse_record(self.layout, self.report)


async def parse_and_store(
    layout: LedgerLayout,
    workdir: Path,
    *,
    ledger_id: uuid.UUID,
    open_source: OpenSource,
    transaction: Transaction,
    progress: Progress,
) -> ParsedLedger:
    """Parse the file from its start, keeping each batch in `workdir` and storing it in a
    `transaction` while the next one is parsed; a partial parse left by an earlier try is
    deleted first."""
    parse_once = partial(
        _parse_once,
        workdir=workdir,
        ledger_id=ledger_id,
        open_source=open_source,
        transaction=transaction,
        progress=progress,
    )
    try:
        parsed = await parse_once(layout)
    except SeparatorChanged as changed:
        # Amounts such as 1.234 came before the first evidence of a decimal comma: the file is
        # read again with it (rare: most files show their separator in the first rows).
        logger.info("the ledger's decimal separator is %r: parsing it again", changed.separator)
        parsed = await parse_once(
            replace(layout, decimal_separator=changed.separator, decimal_separator_detected=True)
        )
    logger.info("parsed %d movements in %d batches", parsed.frame.height, len(parsed.files))
    return parsed


async def mark_parsed(conn: AsyncConnection, ledger_id: uuid.UUID, parsed: ParsedLedger) -> bool:
    """Record that the ledger's stored batches are complete (later runs read them back);
    False if it was recorded already."""
    frame = parsed.frame
    marked = await conn.execute(
        sa.update(ledgers)
        .where(ledgers.c.id == ledger_id, ledgers.c.parsed_at.is_(None))
        .values(
            parsed_at=sa.func.now(),
            movements_total=frame.height,
            account_codes=_distinct(frame, "account_code"),
            document_type_codes=_distinct(frame, "document_type"),
            parse=parsed.parse,
        )
    )
    return marked.rowcount == 1


async def _parse_once(
    layout: LedgerLayout,
    *,
    workdir: Path,
    ledger_id: uuid.UUID,
    open_source: OpenSource,
    transaction: Transaction,
    progress: Progress,
) -> ParsedLedger:
    report = ReadReport()
    async with transaction() as conn:
        await ledger_store.delete_movements(conn, ledger_id)  # a retried partial parse
    progress(0, 0.0)
    files: list[Path] = []
    parts: list[pl.DataFrame] = []
    rows = 0
    # Storing batch n (Parquet encoding, INSERT) overlaps with parsing batch n+1.
    pending: asyncio.Queue[pl.DataFrame | None] = asyncio.Queue(maxsize=2)
    storer = asyncio.create_task(_store_batches(ledger_id, transaction, workdir, pending, files))
    # Threads cannot be interrupted: if this job fails, times out or is cancelled, the event
    # tells the reading threads to stop after the chunk in hand (see prefetch.py).
    stop = threading.Event()
    try:
        async with open_source() as (source, parsed_share):
            batches = iter_movement_batches(source, layout, report=report, stop=stop)
            try:
                while (parsed := await asyncio.to_thread(_next_with_narrow, batches)) is not None:
                    batch, narrowed = parsed
                    await _hand_over(pending, batch, storer)
                    parts.append(narrowed)
                    rows += batch.height
                    progress(rows, parsed_share(batch))
            finally:
                stop.set()
                # Closing joins the reading thread, which may be waiting for a chunk that this
                # event loop fetches: close from another thread, or the two wait for each other.
                await asyncio.to_thread(_close, batches)
        await _hand_over(pending, None, storer)
        await storer
    finally:
        stop.set()
        storer.cancel()
    return ParsedLedger(files, concat_narrow(parts), layout, report)


async def _store_batches(
    ledger_id: uuid.UUID,
    transaction: Transaction,
    workdir: Path,
    pending: asyncio.Queue[pl.DataFrame | None],
    files: list[Path],
) -> None:
    """Encode each parsed batch once, keep it locally for this run, and store it durably."""
    while (batch := await pending.get()) is not None:
        data, path = await asyncio.to_thread(_encode_and_keep, workdir, len(files), batch)
        files.append(path)
        async with transaction() as conn:
            await ledger_store.store_batch(conn, ledger_id, batch, data)


async def _hand_over(
    pending: asyncio.Queue[pl.DataFrame | None],
    item: pl.DataFrame | None,
    storer: asyncio.Task[None],
) -> None:
    """Queue an item for the storer, surfacing its failure (as soon as it failed, not once the
    queue is full: a refused write means the job must stop) instead of waiting on a dead queue."""
    if not storer.done():
        put = asyncio.ensure_future(pending.put(item))
        await asyncio.wait({put, storer}, return_when=asyncio.FIRST_COMPLETED)
        if put.done():
            return
        put.cancel()
    await storer  # it stopped early: raise its error
    raise RuntimeError("the batch storer stopped before the end of the ledger")


def _close(batches: Iterator[pl.DataFrame]) -> None:
    """Stop a batch stream early (a no-op once it is exhausted)."""
    close = getattr(batches, "close", None)
    # "already executing": a cancelled to_thread is still inside next(); it finishes by itself.
    with contextlib.suppress(ValueError):
        if close is not None:
            close()


def _next_with_narrow(
    batches: Iterator[pl.DataFrame],
) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """The next batch and its narrow slice (computed here, off the event loop), or None."""
    batch = next(batches, None)
    return None if batch is None else (batch, narrow(batch))


def _encode_and_keep(workdir: Path, index: int, batch: pl.DataFrame) -> tuple[bytes, Path]:
    data = ledger_store.batch_to_parquet(batch)
    return data, write_batch_file(workdir, index, data)


def write_batch_file(workdir: Path, index: int, data: bytes) -> Path:
    """Keep batch number `index` (Parquet bytes) in the run's folder."""
    path = workdir / f"batch-{index:05d}.parquet"
    path.write_bytes(data)
    return path


def _distinct(frame: pl.DataFrame, column: str) -> list[str]:
    # Not the codes rows were rejected for (over 100 characters, NUL): no reference-data change
    # can touch them, and Postgres text cannot hold a NUL.
    # Filtering the one column (not the frame) and casting only its distinct values keeps this
    # cheap on millions of rows.
    rejected = pl.col("invalid_field").is_not_null() & (pl.col("invalid_field") == column)
    values = frame.select(pl.col(column).filter(~rejected).unique()).to_series()
    return sorted(value for value in values.cast(pl.String).to_list() if value)


def concat_narrow(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """One frame over the batches' narrow slices: no rechunk, which would double peak memory."""
    return pl.concat(parts, rechunk=False) if parts else pl.DataFrame(schema=NARROW_SCHEMA)
