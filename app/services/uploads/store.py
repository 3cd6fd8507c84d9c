"""Storing an upload's file while it is received, so that accepting it is a small transaction.

The file's stored-form blocks (see upload_spool) are written to ledger_file_chunks as they come,
a few per short transaction, under a ledger row marked `receiving` (created with the first
blocks). Writing overlaps with receiving the rest of the body; no transaction or connection is
held while a slow client sends. Accepting the upload (ledgers.accept_ledger) fills the row in and
clears the mark; a failed upload deletes the row, its chunks going with it by cascade.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.postgres.ledger_store import FILE_COMPRESSION, append_file_chunks
from app.adapters.postgres.tables import ledgers

logger = logging.getLogger(__name__)

# At most this many blocks (1 MiB of the file each, before compression) wait while the previous
# ones are written; they then go in one transaction. Receiving waits when Postgres lags.
MAX_WAITING_BLOCKS = 8
# A `receiving` row this old belongs to an upload that died with its API process (a failed
# upload deletes its own): the cleanup job removes it. Far longer than any live upload.
ABANDONED_AFTER = timedelta(hours=24)


class StagedFile:
    """The file of one upload, written to Postgres block by block under `ledger_id`."""

    def __init__(self, engine: AsyncEngine, closing_id: uuid.UUID) -> None:
        self.ledger_id = uuid.uuid4()
        # Awaited once the first blocks are stored while more are still coming (never for a
        # file that arrived whole before its first write): the upload can be parsed meanwhile
        # (iterations/parse_ahead.py).
        self.on_streaming: Callable[[], Awaitable[None]] | None = None
        self._engine = engine
        self._closing_id = closing_id
        self._created = False
        self._waiting: list[bytes] = []
        self._next_seq = 0
        self._writing: asyncio.Task[None] | None = None

    async def add(self, block: bytes) -> None:
        """Queue the next block; it is written in the background with the others waiting."""
        self._waiting.append(block)
        if self._busy() and len(self._waiting) < MAX_WAITING_BLOCKS:
            return
        if self._writing is not None:
            await self._writing  # raises a failed write's error here
        self._writing = asyncio.create_task(self._write(*self._take(), more_to_come=True))

    async def finish(self) -> None:
        """Write the last blocks (and the ledger row, for an empty file) and wait for them."""
        if self._writing is not None:
            await self._writing
        if self._waiting or not self._created:
            await self._write(*self._take())

    async def discard(self) -> None:
        """Remove what was written, unless the upload was accepted. Best effort: a row left
        behind (Postgres unreachable) is removed by the cleanup job."""
        if self._writing is not None:
            with contextlib.suppress(Exception):  # its error is the upload's, raised already
                await self._writing
        if not self._created:
            return
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    sa.delete(ledgers).where(ledgers.c.id == self.ledger_id, ledgers.c.receiving)
                )
        except Exception as exc:
            logger.warning(
                "the chunks of a failed upload were not removed (%s); the cleanup job will",
                type(exc).__name__,
            )

    def _busy(self) -> bool:
        return self._writing is not None and not self._writing.done()

    def _take(self) -> tuple[int, list[bytes]]:
        blocks, self._waiting = self._waiting, []
        first_seq = self._next_seq
        self._next_seq += len(blocks)
        return first_seq, blocks

    async def _write(self, first_seq: int, blocks: list[bytes], more_to_come: bool = False) -> None:
        async with self._engine.begin() as conn:
            if not self._created:
                # Filled in on acceptance; until then no closing points at it.
                await conn.execute(
                    sa.insert(ledgers).values(
                        id=self.ledger_id,
                        closing_id=self._closing_id,
                        size_bytes=0,
                        sha256="",
                        file_compression=FILE_COMPRESSION,
                        layout={},
                        receiving=True,
                    )
                )
            await append_file_chunks(conn, self.ledger_id, first_seq, blocks)
        announce = more_to_come and not self._created
        self._created = True
        if announce and self.on_streaming is not None:
            await self.on_streaming()


async def purge_abandoned(engine: AsyncEngine, older_than: timedelta = ABANDONED_AFTER) -> int:
    """Delete `receiving` ledgers (and their chunks) left by uploads that never finished."""
    async with engine.begin() as conn:
        deleted = await conn.execute(
            sa.delete(ledgers).where(
                ledgers.c.receiving, ledgers.c.uploaded_at < sa.func.now() - older_than
            )
        )
        count = deleted.rowcount
    if count:
        logger.info("removed %d abandoned upload(s)", count)
    return count
