"""Giving a snapshot entry its gzip representation where it is made (publish, cache fill, view,
review), never per request; a large one is compressed off the event loop."""

from __future__ import annotations

import asyncio

from app.domain.snapshot import OFF_LOOP_BYTES, SnapshotEntry, with_gzip


async def compressed(entry: SnapshotEntry, min_bytes: int) -> SnapshotEntry:
    """The entry with its gzip representation (see domain.snapshot.with_gzip)."""
    if entry.gzip is not None or len(entry.body) < max(min_bytes, OFF_LOOP_BYTES):
        return with_gzip(entry, min_bytes)
    return await asyncio.to_thread(with_gzip, entry, min_bytes)
