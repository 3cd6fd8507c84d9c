"""An iteration's movements: parsed from the stored file on first use, then read back from the
stored Parquet batches. Either way they are mirrored in a local temp dir for the run."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.postgres import ledger_store
from app.adapters.postgres.tables import iterations, ledgers
from app.domain.duplicates import FETCH_COLUMNS, FetchRows
from app.domain.ledger.format import LedgerLayout
from app.domain.ledger.reader import (
    NARROW_SCHEMA,
    ReadReport,
    SeparatorChanged,
    iter_movement_batches,
    narrow,
    parse_record,
)
from app.services.iterations import claims
from app.services.iterations.claims import Claim

logger = logging.getLogger(__name__)

# Parsing is most of a first run's work; evaluation and publishing share the rest.
PARSE_PROGRESS_SHARE = 0.8


@dataclass(frozen=True)
class LoadedMovements:
    """What evaluation needs: the narrow frame and a way to fetch full rows by line."""

    narrow: pl.DataFrame
    has_document_type: bool
    fetch_rows: FetchRows


def local_fetcher(batch_files: list[Path]) -> FetchRows:
    """Fetch `line` and FETCH_COLUMNS of some lines from the local batch files."""

    def fetch(lines: pl.Series) -> pl.DataFrame:
        wanted = lines.cast(pl.Int32)
        # One scan over every file: Polars reads them in parallel.
        return (
            pl.scan_parquet(batch_files)
            .select("line", *FETCH_COLUMNS)
            .filter(pl.col("line").is_in(wanted.implode()))
            .collect()
        )

    return fetch


async def load_movements(engine: AsyncEngine, claimed: Claim, workdir: Path) -> LoadedMovements:
    """The ledger's movements, parsing and storing them the first time."""
    async with engine.connect() as conn:
        ledger = (
            await conn.execute(sa.select(ledgers).where(ledgers.c.id == claimed.ledger_id))
        ).one()
    layout = ledger_store.layout_from_json(ledger.layout)
    if ledger.parsed_at is None:
        files, frame = await _parse_and_store(engine, claimed, ledger, layout, workdir)
    else:
        files, frame = await _download(engine, claimed, workdir)
        await _record_parse(engine, claimed, ledger.parse or parse_record(layout, None))
    claimed.movements_processed = frame.height
    return LoadedMovements(frame, layout.has_document_type, local_fetcher(files))


async def _parse_and_store(
    engine: AsyncEngine, claimed: Claim, ledger: sa.Row[Any], layout: LedgerLayout, workdir: Path
) -> tuple[list[Path], pl.DataFrame]:
    report = ReadReport()
    try:
        files, frame = await _parse_once(engine, claimed, ledger, layout, workdir, report)
    except SeparatorChanged as changed:
        # Amounts such as 1.234 came before the first evidence of a decimal comma: the file is
        # read again with it (rare: most files show their separator in the first rows).
        logger.info("the ledger's decimal separator is %r: parsing it again", changed.separator)
        layout = replace(
            layout, decimal_separator=changed.separator, decimal_separator_detected=True
        )
        report = ReadReport()
        files, frame = await _parse_once(engine, claimed, ledger, layout, workdir, report)
    logger.info("parsed %d movements in %d batches", frame.height, len(files))
    parse = parse_record(layout, report)
    async with claims.owned_transaction(engine, claimed) as conn:
        await conn.execute(
            sa.update(ledgers)
            .where(ledgers.c.id == claimed.ledger_id)
            .values(
                parsed_at=sa.func.now(),
                movements_total=frame.height,
                account_codes=_distinct(frame, "account_code"),
                document_type_codes=_distinct(frame, "document_type"),
                parse=parse,
            )
        )
    await _record_parse(engine, claimed, parse)
    await claims.beat(engine, claimed)
    return files, frame


async def _parse_once(
    engine: AsyncEngine,
    claimed: Claim,
    ledger: sa.Row[Any],
    layout: LedgerLayout,
    workdir: Path,
    report: ReadReport,
) -> tuple[list[Path], pl.DataFrame]:
    # Every write here is guarded by the claim: a job whose iteration was taken over must not
    # delete or add the new owner's batches (LeaseLost stops it at its next write).
    async with claims.owned_transaction(engine, claimed) as conn:
        await ledger_store.delete_movements(conn, claimed.ledger_id)  # a retried partial parse
    claimed.movements_processed = 0
    files: list[Path] = []
    parts: list[pl.DataFrame] = []
    # Storing batch n (Parquet encoding, INSERT) overlaps with parsing batch n+1.
    pending: asyncio.Queue[pl.DataFrame | None] = asyncio.Queue(maxsize=2)
    storer = asyncio.create_task(_store_batches(engine, claimed, workdir, pending, files))
    # Threads cannot be interrupted: if this job fails, times out or is cancelled, the event
    # tells the reading threads to stop after the chunk in hand (see prefetch.py).
    stop = threading.Event()
    try:
        async with _ledger_source(engine, ledger, layout, workdir) as (source, parsed_share):
            batches = iter_movement_batches(source, layout, report=report, stop=stop)
            try:
                while (parsed := await asyncio.to_thread(_next_with_narrow, batches)) is not None:
                    batch, narrowed = parsed
                    await _hand_over(pending, batch, storer)
                    parts.append(narrowed)
                    claimed.movements_processed += batch.height
                    claimed.progress = PARSE_PROGRESS_SHARE * min(1.0, parsed_share(batch))
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
    return files, _concat(parts)


async def _record_parse(engine: AsyncEngine, claimed: Claim, parse: dict[str, Any]) -> None:
    """The iteration shows how its file was read (complete once the file has been parsed)."""
    async with claims.owned_transaction(engine, claimed) as conn:
        await conn.execute(sa.update(iterations).where(claimed.owned()).values(parse=parse))


@asynccontextmanager
async def _ledger_source(
    engine: AsyncEngine, ledger: sa.Row[Any], layout: LedgerLayout, workdir: Path
) -> AsyncIterator[tuple[Path | BinaryIO, Callable[[pl.DataFrame], float]]]:
    """What iter_movement_batches reads, and the share of the file parsed once a batch is.

    A CSV is streamed from Postgres while it is parsed; a workbook (a zip archive, read from
    its end) is written to `workdir` first."""
    async with engine.connect() as conn:
        if layout.kind == "xlsx":
            path = workdir / "ledger.xlsx"
            await ledger_store.restore_file(conn, ledger.id, ledger.file_compression, path)
            lines = _estimate_lines(path, ledger.size_bytes)
            yield path, lambda batch: int(batch["line"].max()) / lines  # type: ignore[arg-type]
            return
        loop = asyncio.get_running_loop()
        reader = ledger_store.StoredFileReader(conn, ledger.id, ledger.file_compression, loop)
        with io.BufferedReader(reader) as stream:
            # The reader runs one batch ahead of the one just parsed: a slight overestimate.
            yield stream, lambda _: reader.delivered / max(1, ledger.size_bytes)


async def _store_batches(
    engine: AsyncEngine,
    claimed: Claim,
    workdir: Path,
    pending: asyncio.Queue[pl.DataFrame | None],
    files: list[Path],
) -> None:
    """Encode each parsed batch once, keep it locally for this run, and store it durably
    while the claim is still this job's."""
    while (batch := await pending.get()) is not None:
        data, path = await asyncio.to_thread(_encode_and_keep, workdir, len(files), batch)
        files.append(path)
        async with claims.owned_transaction(engine, claimed) as conn:
            await ledger_store.store_batch(conn, claimed.ledger_id, batch, data)


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


async def _download(
    engine: AsyncEngine, claimed: Claim, workdir: Path
) -> tuple[list[Path], pl.DataFrame]:
    files: list[Path] = []
    parts: list[pl.DataFrame] = []
    async with engine.connect() as conn:
        async for data in ledger_store.iter_batch_bytes(conn, claimed.ledger_id):
            path = _write(workdir, len(files), data)
            files.append(path)
            parts.append(await asyncio.to_thread(_read_narrow, path))
    return files, _concat(parts)


def _read_narrow(path: Path) -> pl.DataFrame:
    return narrow(pl.read_parquet(path))


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
    return data, _write(workdir, index, data)


def _write(workdir: Path, index: int, data: bytes) -> Path:
    path = workdir / f"batch-{index:05d}.parquet"
    path.write_bytes(data)
    return path


def _estimate_lines(path: Path, size_bytes: int) -> int:
    """Lines in the file, estimated from its first MiB (for progress only)."""
    with path.open("rb") as fh:
        head = fh.read(1024 * 1024)
    per_line = len(head) / max(1, head.count(b"\n"))
    return max(1, int(size_bytes / per_line))


def _distinct(frame: pl.DataFrame, column: str) -> list[str]:
    # Not the codes rows were rejected for (over 100 characters, NUL): no reference-data change
    # can touch them, and Postgres text cannot hold a NUL.
    # Filtering the one column (not the frame) and casting only its distinct values keeps this
    # cheap on millions of rows.
    rejected = pl.col("invalid_field").is_not_null() & (pl.col("invalid_field") == column)
    values = frame.select(pl.col(column).filter(~rejected).unique()).to_series()
    return sorted(value for value in values.cast(pl.String).to_list() if value)


def _concat(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """One frame over the batches' chunks: no rechunk, which would double peak memory."""
    return pl.concat(parts, rechunk=False) if parts else pl.DataFrame(schema=NARROW_SCHEMA)
