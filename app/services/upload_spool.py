"""Spooling a ledger upload while it arrives: one pass over its bytes does everything the upload
needs later, so nothing re-reads the file before it is stored.

Each 1 MiB block is hashed (sha256), scanned by the byte guards (upload_guards.ReceivedBytes),
written to a local copy (inspection and the rare whole-file checks read it) and compressed for
storage (ledger_store.chunk_compressor). That work runs in two threads (compression in one, the
rest in the other), one block at a time, while the event loop receives the next block.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

from app.adapters.postgres.ledger_store import FILE_CHUNK_BYTES, chunk_compressor
from app.services.upload_guards import ReceivedBytes


class UploadSpool:
    """A file being received into `folder`: its local copy, stored-form blocks and digests."""

    def __init__(self, folder: Path, suffix: str) -> None:
        self.path = folder / f"ledger{suffix}"
        self.seen = ReceivedBytes()
        self._digest = hashlib.sha256()
        self._compress = chunk_compressor()
        self._raw = self.path.open("wb")
        self._compressed = (folder / "compressed-blocks").open("w+b")
        self._block_sizes: list[int] = []
        self._buffer = bytearray()
        self._in_flight: asyncio.Future[tuple[None, bytes]] | None = None

    async def write(self, data: bytes) -> None:
        """Add received bytes; full blocks go to the background thread."""
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
        await self._settle()
        self._raw.close()

    async def discard(self) -> None:
        """Stop here (the upload failed): wait for the block in flight, release the files."""
        try:
            await self._settle()
        finally:
            self.close()

    def close(self) -> None:
        """Release the files (the caller removes the folder)."""
        self._raw.close()
        self._compressed.close()

    @property
    def size(self) -> int:
        return self.seen.size

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def compressed_blocks(self) -> Iterator[bytes]:
        """The stored form of the file, block by block, in order (after finish)."""
        self._compressed.seek(0)
        for size in self._block_sizes:
            yield self._compressed.read(size)

    async def _submit(self, block: bytes) -> None:
        # One block in flight at most (memory stays at two blocks, order is kept); its two
        # halves of work run in parallel threads: compression alone costs as much as the rest.
        await self._settle()
        self._in_flight = asyncio.gather(
            asyncio.to_thread(self._absorb, block), asyncio.to_thread(self._compress, block)
        )

    async def _settle(self) -> None:
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            _, compressed = await in_flight
            self._compressed.write(compressed)
            self._block_sizes.append(len(compressed))

    def _absorb(self, block: bytes) -> None:
        self._digest.update(block)
        self.seen.add(block)
        self._raw.write(block)
