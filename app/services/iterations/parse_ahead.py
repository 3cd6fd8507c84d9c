"""Parsing a CSV ledger while its upload is still arriving.

An upload's file goes to Postgres block by block as it is received (uploads/store.py). Once its
first blocks are there, the API queues a `parse_upload_ahead` job: a worker parses the blocks as
they come and stores the batches, so that when the upload is accepted the iteration's run starts
from parsed movements instead of from the file. Upload and parsing overlap, on two cores.

It is a head start only, never needed for a correct result: the run parses the file itself
whenever no parse ahead finished with the layout the upload was accepted with (options sent
after the file part, a workbook, a failed or stalled upload, a busy worker, a worker that died).

- One parse ahead of a ledger at a time, and none once its run began: the job holds an advisory
  lock for as long as it parses, and starts only while the upload is still `receiving`; a run
  whose ledger is not parsed yet waits for that lock (wait_for).
- Its writes need no claim: the run waits, and a failed upload deletes the ledger row, which
  takes the batches with it and makes any later write of them fail.
- A worker process holds at most PARSES_AHEAD_PER_PROCESS parses, running or parsed and not yet
  taken by the run, so its memory stays bounded whatever the number of uploads.
"""

from __future__ import annotations

import asyncio
import io
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.adapters.postgres import ledger_store
from app.adapters.postgres.advisory import lock_key
from app.adapters.postgres.ledger_store import FetchChunks
from app.adapters.postgres.tables import ledgers
from app.domain.errors import DomainError
from app.domain.ledger.format import LedgerLayout, LedgerOptions
from app.domain.ledger.inspect import csv_layout_of_head
from app.domain.ledger.sniff import detect_kind
from app.services.iterations.parsing import ParsedLedger, Source, mark_parsed, parse_and_store

logger = logging.getLogger(__name__)

# One parse of a whole core per worker process; uploads beyond it are parsed by their runs.
PARSES_AHEAD_PER_PROCESS = 1
# How often the end of the stored file, and a busy lock, are looked at again.
POLL_SECONDS = 0.02
# How often a run waiting for a parse ahead of its worker reports that parse's progress.
PROGRESS_SECONDS = 0.5
# An upload that stores nothing new for this long, or still arrives after MAX_SECONDS, is left
# to its run: a slow client must not keep a worker's job slot.
STALL_SECONDS = 10.0
MAX_SECONDS = 300.0
# A parse nobody in this process took by then is dropped from memory (its batches stay stored:
# a run in another worker reads them back).
KEEP_SECONDS = 30.0
# The layout is read from the file's first chunks: they hold any header short enough to accept.
HEAD_CHUNKS = 2


class UploadEnded(Exception):
    """The upload failed (its ledger row is gone) or stalled: nothing to parse ahead."""


@dataclass(frozen=True)
class ParsedAhead:
    """A ledger parsed while it was uploaded: its batches' files live in `folder`."""

    parsed: ParsedLedger
    folder: Path

    def move_files(self, workdir: Path) -> list[Path]:
        """Move the batch files into the run's folder (same file system: renames) and drop
        the parse's own folder."""
        try:
            return [path.replace(workdir / path.name) for path in self.parsed.files]
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class _Parse:
    """A parse ahead of this process: how far it got, its result once done, and the timer that
    drops a result nobody took (cancelled when taken: it would keep the movements in memory)."""

    result: asyncio.Future[ParsedAhead | None]
    expiry: asyncio.TimerHandle | None = None
    rows: int = 0  # movements parsed so far
    bytes_read: Callable[[], int] = lambda: 0  # bytes of the file parsed so far

    def advance(self, rows: int, _share: float) -> None:
        self.rows = rows


# This process's parses ahead by ledger: a run in the same process takes the result from here
# instead of reading back what was just stored.
_parses: dict[uuid.UUID, _Parse] = {}


async def parse_arriving(
    engine: AsyncEngine, ledger_id: uuid.UUID, filename: str | None, options: LedgerOptions
) -> str:
    """Parse and store the arriving ledger, if this process has room and nobody else does it;
    returns what happened, for arq's log. Whatever goes wrong (Postgres out of reach included:
    the job is not retried) leaves the parse to the run."""
    if len(_parses) >= PARSES_AHEAD_PER_PROCESS:
        return "skipped: this worker holds another parse ahead"
    loop = asyncio.get_running_loop()
    # Reserved before the first await: two jobs of this worker cannot both get past the test.
    parse = _parses[ledger_id] = _Parse(loop.create_future())
    ahead: ParsedAhead | None = None
    try:
        async with engine.connect() as conn, conn.begin():
            # Held until this transaction ends: the ledger's run waits for it (wait_for).
            lock = sa.func.pg_try_advisory_xact_lock(_key(ledger_id))
            if not await conn.scalar(sa.select(lock)):
                return "skipped: parsed ahead by another job"
            compression = await conn.scalar(
                sa.select(ledgers.c.file_compression).where(
                    ledgers.c.id == ledger_id, ledgers.c.receiving
                )
            )
            if compression is None:
                return "skipped: the upload has ended"
            deadline = time.monotonic() + MAX_SECONDS
            fetch = partial(_arriving_chunks, conn, ledger_id, deadline)
            try:
                ahead = await _parse(
                    engine, ledger_id, fetch, compression, filename, options, parse
                )
            except Exception as exc:  # the type only: a message may hold a connection string
                logger.info("ledger %s not parsed ahead: %s", ledger_id, type(exc).__name__)
    finally:  # cancelled or failed too: a run waiting for the result must get one
        parse.result.set_result(ahead)
        if ahead is None:
            _parses.pop(ledger_id, None)
        else:
            parse.expiry = loop.call_later(KEEP_SECONDS, _drop, ledger_id, parse)
    return "parsed" if ahead is not None else "not parsed: left to the run"


async def wait_for(
    engine: AsyncEngine, ledger_id: uuid.UUID, progress: Callable[[int, int], None]
) -> ParsedAhead | None:
    """Wait until no parse ahead of the ledger runs; the parse, if one of this process stored
    the ledger (taken: the caller owns its files). None otherwise: then the ledger's row says
    whether one in another process did. Meanwhile `progress` learns of the movements and bytes
    parsed by one of this process, every PROGRESS_SECONDS."""
    while True:
        parse = _parses.get(ledger_id)
        if parse is not None:
            while not parse.result.done():  # wait() never cancels what it waits for
                progress(parse.rows, parse.bytes_read())
                await asyncio.wait({parse.result}, timeout=PROGRESS_SECONDS)
            ahead = parse.result.result()
            if _parses.get(ledger_id) is not parse:
                return None  # dropped meanwhile (its batches are stored all the same)
            del _parses[ledger_id]
            if parse.expiry is not None:
                parse.expiry.cancel()
            return ahead
        async with engine.begin() as conn:  # free once this transaction ends: a mere test
            lock = sa.func.pg_try_advisory_xact_lock(_key(ledger_id))
            if await conn.scalar(sa.select(lock)):
                return None
        await asyncio.sleep(POLL_SECONDS)


async def _parse(
    engine: AsyncEngine,
    ledger_id: uuid.UUID,
    fetch: FetchChunks,
    compression: str,
    filename: str | None,
    options: LedgerOptions,
    parse: _Parse,
) -> ParsedAhead | None:
    head = await _head(fetch, compression)
    try:
        if detect_kind(head, filename) != "csv":
            return None  # a workbook is a zip archive, read from its end
        layout = await asyncio.to_thread(csv_layout_of_head, head, options)
    except DomainError:
        return None  # refused at acceptance, which says why
    folder = Path(tempfile.mkdtemp(prefix="ledger-ahead-"))
    kept = False
    try:
        parsed = await parse_and_store(
            layout,
            folder,
            ledger_id=ledger_id,
            open_source=lambda: _arriving_source(fetch, compression, parse),
            transaction=engine.begin,
            progress=parse.advance,
        )
        # The whole file was read: the upload was accepted, with its layout.
        async with engine.begin() as conn:
            if not await _accepted_with(conn, ledger_id, layout):
                await ledger_store.delete_movements(conn, ledger_id)
                return None
            if not await mark_parsed(conn, ledger_id, parsed):
                return None
        kept = True
    finally:
        if not kept:  # failed or cancelled too
            shutil.rmtree(folder, ignore_errors=True)
    logger.info("ledger %s parsed while it was uploaded", ledger_id)
    return ParsedAhead(parsed, folder)


async def _accepted_with(conn: AsyncConnection, ledger_id: uuid.UUID, layout: LedgerLayout) -> bool:
    """Whether the upload was accepted with this layout (the same options, in effect)."""
    accepted = await conn.scalar(
        sa.select(ledgers.c.layout).where(ledgers.c.id == ledger_id, ~ledgers.c.receiving)
    )
    return accepted is not None and ledger_store.layout_from_json(accepted) == layout


async def _head(fetch: FetchChunks, compression: str) -> bytes:
    """The file's first HEAD_CHUNKS chunks (all of it, if shorter), decompressed."""
    reader = ledger_store.StoredFileReader(fetch, compression, asyncio.get_running_loop())
    return await asyncio.to_thread(reader.read, HEAD_CHUNKS * ledger_store.FILE_CHUNK_BYTES)


@asynccontextmanager
async def _arriving_source(
    fetch: FetchChunks, compression: str, parse: _Parse
) -> AsyncIterator[Source]:
    reader = ledger_store.StoredFileReader(fetch, compression, asyncio.get_running_loop())
    parse.bytes_read = lambda: reader.delivered
    with io.BufferedReader(reader) as stream:
        yield stream, lambda _: 0.0  # the size is unknown until the upload ends


async def _arriving_chunks(
    conn: AsyncConnection, ledger_id: uuid.UUID, deadline: float, first_seq: int
) -> Sequence[Any]:
    """The next stored chunks of an upload, waiting for them while it is received; empty at
    the end of an accepted upload; UploadEnded if it failed, stalled or ran past `deadline`."""
    quiet_since = time.monotonic()
    while not (rows := await ledger_store.chunks_from(conn, ledger_id, first_seq)):
        receiving = await conn.scalar(
            sa.select(ledgers.c.receiving).where(ledgers.c.id == ledger_id)
        )
        if receiving is None:
            raise UploadEnded("the upload failed")
        if not receiving:  # accepted: every chunk is stored, the last may have come just now
            return await ledger_store.chunks_from(conn, ledger_id, first_seq)
        now = time.monotonic()
        if now - quiet_since > STALL_SECONDS or now > deadline:
            raise UploadEnded("the upload stalled")
        await asyncio.sleep(POLL_SECONDS)
    return rows


def _drop(ledger_id: uuid.UUID, parse: _Parse) -> None:
    """Forget a parse that no run of this process took in time."""
    if _parses.get(ledger_id) is parse:
        del _parses[ledger_id]
        ahead = parse.result.result()
        if ahead is not None:
            shutil.rmtree(ahead.folder, ignore_errors=True)


def _key(ledger_id: uuid.UUID) -> int:
    return lock_key("parse-ahead", str(ledger_id))
