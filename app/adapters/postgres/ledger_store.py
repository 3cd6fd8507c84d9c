"""Durable ledger storage: the uploaded file in chunks, and its parsed movements as Parquet."""

from __future__ import annotations

import asyncio
import io
import uuid
from bisect import bisect_left
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
import zstandard
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.postgres.tables import ledger_file_chunks, movement_batches
from app.domain.ledger.format import AmountMode, ColumnRef, LedgerLayout

FILE_CHUNK_BYTES = 1024 * 1024
# Uploaded files are stored compressed, in chunks of FILE_CHUNK_BYTES (before compression):
# zstd level 1 shrinks ledger CSVs ~4.4x at ~400 MB/s, cheaper than writing the raw text.
FILE_COMPRESSION = "zstd"
ZSTD_LEVEL = 1
_CHUNKS_PER_FETCH = 16
# A stalled fetch (Postgres gone) must not leave a parsing thread waiting forever.
_FETCH_TIMEOUT_SECONDS = 120


def layout_to_json(layout: LedgerLayout) -> dict[str, Any]:
    """The layout as stored in ledgers.layout."""
    return asdict(layout)


def layout_from_json(data: dict[str, Any]) -> LedgerLayout:
    """Rebuild a stored layout."""
    return LedgerLayout(
        kind=data["kind"],
        encoding=data["encoding"],
        delimiter=data["delimiter"],
        header=tuple(data["header"]),
        columns=tuple(ColumnRef(**column) for column in data["columns"]),
        amount_mode=AmountMode(data["amount_mode"]),
        # Layouts stored before detection existed always name their separator.
        decimal_separator=data.get("decimal_separator"),
        decimal_separator_detected=data.get("decimal_separator_detected", False),
    )


def chunk_compressor() -> Callable[[bytes], bytes]:
    """A function turning one chunk of an uploaded file into its stored form (a complete zstd
    frame: chunks decompress alone). Not for concurrent use: one per upload."""
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress


async def append_file_chunks(
    conn: AsyncConnection, ledger_id: uuid.UUID, first_seq: int, compressed_chunks: Iterable[bytes]
) -> None:
    """Copy consecutive chunks of the file (made by a chunk_compressor) into ledger_file_chunks,
    numbered from first_seq."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    records = ((ledger_id, first_seq + n, chunk) for n, chunk in enumerate(compressed_chunks))
    await driver.copy_records_to_table(
        ledger_file_chunks.name, records=records, columns=["ledger_id", "seq", "data"]
    )


async def restore_file(
    conn: AsyncConnection, ledger_id: uuid.UUID, compression: str, target: Path
) -> None:
    """Write the stored file back to disk, chunk by chunk."""
    decompress = _decompressor(compression)
    with target.open("wb") as out:
        seq = 0
        while rows := await chunks_from(conn, ledger_id, seq):
            for row in rows:
                out.write(decompress(row.data))
            seq = rows[-1].seq + 1


# The stored chunks (seq, data) of a file from a seq on, a few at a time; empty at its end.
FetchChunks = Callable[[int], Coroutine[Any, Any, Sequence[Any]]]


class StoredFileReader(io.RawIOBase):
    """The stored file as a blocking binary stream, for a thread that parses it while the event
    loop fetches its chunks with `fetch` (chunks_from, or one that waits for an upload's next
    chunks): parsing starts with the first chunk, and the file never touches the worker's disk.
    Reads return as many bytes as asked for, except at the end."""

    def __init__(
        self, fetch: FetchChunks, compression: str, loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__()
        self._fetch_from = fetch
        self._loop = loop
        self._decompress = _decompressor(compression)
        self._stored: deque[bytes] = deque()
        self._current = memoryview(b"")
        self._next_seq = 0
        self._fetched_all = False
        self.delivered = 0  # bytes read so far

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(target):
            if not self._current:
                if not self._stored and not self._fetch():
                    break
                self._current = memoryview(self._decompress(self._stored.popleft()))
            count = min(len(target) - filled, len(self._current))
            target[filled : filled + count] = self._current[:count]
            self._current = self._current[count:]
            filled += count
        self.delivered += filled
        return filled

    def _fetch(self) -> bool:
        """Queue the next stored chunks; False at the end of the file."""
        if self._fetched_all:
            return False
        query = self._fetch_from(self._next_seq)
        rows = asyncio.run_coroutine_threadsafe(query, self._loop).result(_FETCH_TIMEOUT_SECONDS)
        if not rows:
            self._fetched_all = True
            return False
        self._stored.extend(row.data for row in rows)
        self._next_seq = rows[-1].seq + 1
        return True


async def chunks_from(conn: AsyncConnection, ledger_id: uuid.UUID, first_seq: int) -> Sequence[Any]:
    """The next few stored chunks (seq, data) of a file from first_seq on; empty at the end."""
    return (
        await conn.execute(
            sa.select(ledger_file_chunks.c.seq, ledger_file_chunks.c.data)
            .where(
                ledger_file_chunks.c.ledger_id == ledger_id, ledger_file_chunks.c.seq >= first_seq
            )
            .order_by(ledger_file_chunks.c.seq)
            .limit(_CHUNKS_PER_FETCH)
        )
    ).all()


def _decompressor(compression: str) -> Callable[[bytes], bytes]:
    if compression == "zstd":
        return zstandard.ZstdDecompressor().decompress
    return bytes  # stored before compression (migration 0002 marked those 'none')


def batch_to_parquet(batch: pl.DataFrame) -> bytes:
    """Serialise a movement batch; lz4 encodes fastest (measured against zstd and none)."""
    buffer = io.BytesIO()
    batch.write_parquet(buffer, compression="lz4", statistics=False)
    return buffer.getvalue()


async def delete_movements(conn: AsyncConnection, ledger_id: uuid.UUID) -> None:
    """Forget a partial parse (a retried run starts over)."""
    await conn.execute(sa.delete(movement_batches).where(movement_batches.c.ledger_id == ledger_id))


async def store_batch(
    conn: AsyncConnection, ledger_id: uuid.UUID, batch: pl.DataFrame, data: bytes
) -> None:
    """Persist one parsed batch of consecutive lines, already encoded by batch_to_parquet."""
    # As execution parameters: a statement's own values stay in SQLAlchemy's statement cache.
    await conn.execute(
        sa.insert(movement_batches),
        {
            "ledger_id": ledger_id,
            "first_line": int(batch["line"].min()),  # type: ignore[arg-type]
            "last_line": int(batch["line"].max()),  # type: ignore[arg-type]
            "row_count": batch.height,
            "data": data,
        },
    )


async def iter_batch_bytes(
    conn: AsyncConnection, ledger_id: uuid.UUID, first_line: int = 1, last_line: int | None = None
) -> AsyncIterator[bytes]:
    """The stored Parquet batches overlapping [first_line, last_line], in line order, one at a
    time (a 5M-movement ledger is never loaded at once)."""
    query = sa.select(movement_batches.c.first_line).where(
        movement_batches.c.ledger_id == ledger_id, movement_batches.c.last_line >= first_line
    )
    if last_line is not None:
        query = query.where(movement_batches.c.first_line <= last_line)
    starts = (await conn.execute(query.order_by(movement_batches.c.first_line))).scalars().all()
    for start in starts:
        yield (
            await conn.execute(
                sa.select(movement_batches.c.data).where(
                    movement_batches.c.ledger_id == ledger_id,
                    movement_batches.c.first_line == start,
                )
            )
        ).scalar_one()


async def batches_holding(
    conn: AsyncConnection, ledger_id: uuid.UUID, lines: Sequence[int]
) -> AsyncIterator[bytes]:
    """The stored Parquet batches that hold at least one of these (ascending) lines, in line
    order, one at a time: a drill-down page reads only the batches it shows."""
    if not lines:
        return
    spans = await conn.execute(
        sa.select(movement_batches.c.first_line, movement_batches.c.last_line)
        .where(
            movement_batches.c.ledger_id == ledger_id,
            movement_batches.c.last_line >= lines[0],
            movement_batches.c.first_line <= lines[-1],
        )
        .order_by(movement_batches.c.first_line)
    )
    for first, last in spans.all():
        at = bisect_left(lines, first)
        if at == len(lines) or lines[at] > last:
            continue  # no wanted line in this batch
        yield (
            await conn.execute(
                sa.select(movement_batches.c.data).where(
                    movement_batches.c.ledger_id == ledger_id,
                    movement_batches.c.first_line == first,
                )
            )
        ).scalar_one()


def lines_of_batch(data: bytes, lines: Sequence[int]) -> pl.DataFrame:
    """The full movements of one stored batch at these lines (Polars decodes without the GIL:
    run it in a thread)."""
    wanted = pl.Series("line", lines, dtype=pl.Int32)
    return pl.read_parquet(io.BytesIO(data)).filter(pl.col("line").is_in(wanted.implode()))
