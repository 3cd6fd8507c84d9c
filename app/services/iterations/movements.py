"""An iteration's movements: parsed from the stored file on first use (or while it was being
uploaded), then read back from the stored Parquet batches. Either way they are mirrored in a
local temp dir for the run."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.postgres import ledger_store
from app.adapters.postgres.tables import iterations, ledgers
from app.domain.duplicates import FETCH_COLUMNS, FetchRows
from app.domain.ledger.format import LedgerLayout
from app.domain.ledger.reader import narrow, parse_record
from app.services.iterations import claims, parse_ahead
from app.services.iterations.claims import Claim
from app.services.iterations.parsing import (
    ParsedLedger,
    Source,
    concat_narrow,
    mark_parsed,
    parse_and_store,
    write_batch_file,
)

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
    """The ledger's movements: parsed while the upload arrived (parse_ahead), or parsed now
    and stored the first time, or read back from the stored batches."""
    ledger = await _ledger(engine, claimed.ledger_id)
    if ledger.parsed_at is None:
        # Parsed while it arrived? As far as that parse got is this run's progress meanwhile.
        size = max(1, ledger.size_bytes)
        ahead = await parse_ahead.wait_for(
            engine, claimed.ledger_id, lambda rows, read: _parsing(claimed, rows, read / size)
        )
        if ahead is not None:
            files = ahead.move_files(workdir)
            await _record_parse(engine, claimed, ahead.parsed.parse)
            return _loaded(claimed, ledger, files, ahead.parsed.frame)
        ledger = await _ledger(engine, claimed.ledger_id)  # parsed ahead by another worker?
    layout = ledger_store.layout_from_json(ledger.layout)
    if ledger.parsed_at is None:
        parsed = await _parse_and_store(engine, claimed, ledger, layout, workdir)
        files, frame = parsed.files, parsed.frame
    else:
        files, frame = await _download(engine, claimed, workdir)
        await _record_parse(engine, claimed, ledger.parse or parse_record(layout, None))
    return _loaded(claimed, ledger, files, frame)


async def _ledger(engine: AsyncEngine, ledger_id: uuid.UUID) -> sa.Row[Any]:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(ledgers).where(ledgers.c.id == ledger_id))).one()


def _loaded(
    claimed: Claim, ledger: sa.Row[Any], files: list[Path], frame: pl.DataFrame
) -> LoadedMovements:
    claimed.movements_processed = frame.height
    layout = ledger_store.layout_from_json(ledger.layout)
    return LoadedMovements(frame, layout.has_document_type, local_fetcher(files))


async def _parse_and_store(
    engine: AsyncEngine, claimed: Claim, ledger: sa.Row[Any], layout: LedgerLayout, workdir: Path
) -> ParsedLedger:
    # Every write here is guarded by the claim: a job whose iteration was taken over must not
    # delete or add the new owner's batches (LeaseLost stops it at its next write).
    parsed = await parse_and_store(
        layout,
        workdir,
        ledger_id=ledger.id,
        open_source=lambda: _ledger_source(engine, ledger, layout, workdir),
        transaction=lambda: claims.owned_transaction(engine, claimed),
        progress=partial(_parsing, claimed),
    )
    async with claims.owned_transaction(engine, claimed) as conn:
        await mark_parsed(conn, claimed.ledger_id, parsed)
    await _record_parse(engine, claimed, parsed.parse)
    await claims.beat(engine, claimed)
    return parsed


def _parsing(claimed: Claim, rows: int, share: float) -> None:
    """The run's progress while its ledger is parsed: `share` of the file, `rows` movements."""
    claimed.movements_processed = rows
    claimed.progress = PARSE_PROGRESS_SHARE * min(1.0, share)


async def _record_parse(engine: AsyncEngine, claimed: Claim, parse: dict[str, Any]) -> None:
    """The iteration shows how its file was read (complete once the file has been parsed)."""
    async with claims.owned_transaction(engine, claimed) as conn:
        await conn.execute(sa.update(iterations).where(claimed.owned()).values(parse=parse))


@asynccontextmanager
async def _ledger_source(
    engine: AsyncEngine, ledger: sa.Row[Any], layout: LedgerLayout, workdir: Path
) -> AsyncIterator[Source]:
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
        fetch = partial(ledger_store.chunks_from, conn, ledger.id)
        reader = ledger_store.StoredFileReader(fetch, ledger.file_compression, loop)
        with io.BufferedReader(reader) as stream:
            # The reader runs one batch ahead of the one just parsed: a slight overestimate.
            yield stream, lambda _: reader.delivered / max(1, ledger.size_bytes)


async def _download(
    engine: AsyncEngine, claimed: Claim, workdir: Path
) -> tuple[list[Path], pl.DataFrame]:
    files: list[Path] = []
    parts: list[pl.DataFrame] = []
    async with engine.connect() as conn:
        async for data in ledger_store.iter_batch_bytes(conn, claimed.ledger_id):
            path = write_batch_file(workdir, len(files), data)
            files.append(path)
            parts.append(await asyncio.to_thread(_read_narrow, path))
    return files, concat_narrow(parts)


def _read_narrow(path: Path) -> pl.DataFrame:
    return narrow(pl.read_parquet(path))


def _estimate_lines(path: Path, size_bytes: int) -> int:
    """Lines in the file, estimated from its first MiB (for progress only)."""
    with path.open("rb") as fh:
        head = fh.read(1024 * 1024)
    per_line = len(head) / max(1, head.count(b"\n"))
    return max(1, int(size_bytes / per_line))
