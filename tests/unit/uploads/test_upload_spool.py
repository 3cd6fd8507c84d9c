"""The upload spool: blocks compressed in parallel come back in order, byte for byte."""

from __future__ import annotations

import asyncio
import hashlib
import random
from pathlib import Path

import zstandard

from app.adapters.postgres.ledger_store import FILE_CHUNK_BYTES
from app.domain.ledger.inspect import HEAD_BYTES
from app.services.uploads.spool import UploadSpool


async def test_the_stored_blocks_are_the_file_in_order(tmp_path: Path) -> None:
    rng = random.Random(5)
    # Distinct, barely compressible blocks, so that any reordering or mixing shows.
    data = (
        b"".join(
            rng.randbytes(FILE_CHUNK_BYTES // 2) + bytes([n]) * (FILE_CHUNK_BYTES // 2)
            for n in range(9)
        )
        + b'tail "quoted"\n'
    )
    blocks: list[bytes] = []

    async def store(block: bytes) -> None:
        await asyncio.sleep(0)  # the store may await: order must hold anyway
        blocks.append(block)

    spool = UploadSpool(tmp_path, ".csv", store)
    for start in range(0, len(data), 70_001):  # pieces that straddle block boundaries
        await spool.write(data[start : start + 70_001])
    await spool.finish()
    spool.close()

    decompress = zstandard.ZstdDecompressor().decompress
    assert len(blocks) == 10  # nine full blocks and the tail, each decompressing alone
    assert b"".join(decompress(block) for block in blocks) == data
    assert spool.path.read_bytes() == data
    assert spool.sha256 == hashlib.sha256(data).hexdigest()
    assert spool.size == len(data)
    # The guards saw every byte, in order.
    assert spool.seen.first_nul == data.find(b"\x00")
    assert spool.seen.head == data[:HEAD_BYTES]


async def test_a_discarded_spool_waits_for_its_blocks(tmp_path: Path) -> None:
    stored: list[bytes] = []

    async def store(block: bytes) -> None:
        stored.append(block)

    spool = UploadSpool(tmp_path, ".csv", store)
    await spool.write(bytes(3 * FILE_CHUNK_BYTES + 10))
    await spool.discard()  # the blocks in flight finish before the files are closed
    assert spool.path.stat().st_size <= 3 * FILE_CHUNK_BYTES
