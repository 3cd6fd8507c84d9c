"""Spooling a ledger upload while it arrives: one pass over its bytes does everything the upload
needs later, so nothing re-reads the file before it is stored.

Each 1 MiB block is hashed (sha256), scanned by the byte guards (upload_guards.ReceivedBytes),
written to a local copy (inspection and the rare whole-file checks read it) and compressed for
storage (ledger_store.chunk_compressor), then handed, in order, to `store` (upload_store writes
it to Postgres). That work runs in background threads while the event loop receives the next
blocks.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

from app.adapters.postgres.ledger_store import FILE_CHUNK_BYTES, chunk_compressor
from app.services.uploads.guards import ReceivedBytes

# Blocks processed at once. Compression costs as much as everything else together, so two
# blocks compress in parallel while their hashing, scanning and copying run in order in a
# thread of their own: on two cores, receiving and spooling then keep up with each other.
PARALLEL_BLOCKS = 2


class UploadSpool:
    """A file being received into `folder`: its local copy and digests; its stored-form blocks
    go to `store` in order."""

    def __init__(
        self, folder: Path, suffix: str, store: Callable[[bytes], Awaitable[None]]
    ) -> None:
        self.path = folder / f"ledger{suffix}"
        self.seen = ReceivedBytes()
        self._digest = hashlib.sha256()
        # A compressor is not for concurrent use: block n uses compressor n % PARALLEL_BLOCKS,
        # and blocks n and n + PARALLEL_BLOCKS are never in flight together.
        self._compressors = [chunk_compressor() for _ in range(PARALLEL_BLOCKS)]
        # The previous block's absorption: each waits for it, so blocks are hashed, scanned and
        # copied in order, in the shared pool's threads. (A thread of its own per upload cost
        # each upload a thread start, during which the event loop waited.)
        self._absorbed: asyncio.Future[None] | None = None
        self._raw = self.path.open("wb")
        self._store = store
        self._buffer = bytearray()
        self._in_flight: deque[asyncio.Future[tuple[None, bytes]]] = deque()
        self._submitted = 0

    async def write(self, data: bytes) -> None:
        """Add received bytes; full blocks go to the background threads."""
        self._buffer += data
        while len(self._buffer) >= FILE_CHUNK_BYTES:
            block = bytes(self._buffer[:FILE_CHUNK_BYTES])
            del self._buffer[:FILE_CHUNK_BYTES]
            await self._submit(block)

    async def finish(self) -> None:
        """Process the last partial block and wait for all blocks to be done."""
        if self._buffer:
            await self._submit(bytes(self._buffer))
            self._buffer.clear()
        while self._in_flight:
            await self._settle_oldest()
        self._raw.close()

    async def discard(self) -> None:
        """Stop here (the upload failed): wait for the blocks in flight, release the files."""
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        self._in_flight.clear()
        self.close()

    def close(self) -> None:
        """Release the file (the caller removes the folder)."""
        self._raw.close()

    @property
    def size(self) -> int:
        return self.seen.size

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    async def _submit(self, block: bytes) -> None:
        if len(self._in_flight) >= PARALLEL_BLOCKS:  # memory stays at a few blocks
            await self._settle_oldest()
        compress = self._compressors[self._submitted % PARALLEL_BLOCKS]
        self._submitted += 1
        absorbed = self._absorbed = asyncio.ensure_future(self._absorb_after(self._absorbed, block))
        self._in_flight.append(asyncio.gather(absorbed, asyncio.to_thread(compress, block)))

    async def _settle_oldest(self) -> None:
        _, compressed = await self._in_flight.popleft()
        await self._store(compressed)

    async def _absorb_after(self, previous: asyncio.Future[None] | None, block: bytes) -> None:
        if previous is not None:
            await previous  # a failed block fails the ones after it too
        await asyncio.to_thread(self._absorb, block)

    def _absorb(self, block: bytes) -> None:
        self._digest.update(block)
        self.seen.add(block)
        self._raw.write(block)
