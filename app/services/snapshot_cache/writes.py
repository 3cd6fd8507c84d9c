"""Snapshot cache writes outside the read path: after a publish, on a reference-data change,
and `cache warm`. All best effort: Redis being down never fails the work that triggered them."""

from __future__ import annotations

import asyncio
import logging
import uuid

from app.adapters.redis.snapshot_cache import Event, SnapshotCache
from app.domain.errors import NotFound
from app.metrics import CACHE_ERRORS, CACHE_INVALIDATIONS
from app.resources import Resources
from app.services.iterations.claims import Claim
from app.services.snapshot_cache import loads as snapshot_loads
from app.services.snapshot_cache.repository import REDIS_FAILURES, notify_local

logger = logging.getLogger(__name__)

# After a publish the new snapshot must replace the old one in Redis, or readers would be served
# the old one until its TTL: a failed write is retried for a few seconds before giving up.
PUBLISH_RETRY_DELAYS = (0.1, 0.3, 1.0, 2.0)


def _cache(resources: Resources) -> SnapshotCache:
    return SnapshotCache(resources.redis, resources.settings.redis_key_prefix)


async def cache_published(
    resources: Resources, claimed: Claim, document: bytes, content_hash: str
) -> None:
    """Write a just-committed snapshot to Redis (so the first read is a hit) and announce it.
    Never raises: the iteration is published whatever happens here."""
    try:
        async with resources.engine.connect() as conn:
            tenant, client = await snapshot_loads.owner(conn, claimed.closing_id)
        await _store_published(resources, claimed, tenant, client, document, content_hash)
        notify_local(Event("publish", str(tenant), str(claimed.closing_id)))
    except Exception:
        logger.exception("could not cache the snapshot of closing %s", claimed.closing_id)


async def _store_published(
    resources: Resources, claimed: Claim, tenant: uuid.UUID, client: uuid.UUID,
    document: bytes, content_hash: str,
) -> None:  # fmt: skip
    settings = resources.settings
    for delay in (*PUBLISH_RETRY_DELAYS, None):
        try:
            await _cache(resources).store_snapshot(
                tenant, claimed.closing_id, client, claimed.number, content_hash, document,
                ttl=settings.cache_snapshot_ttl_seconds,
                compress_min_bytes=settings.cache_compress_min_bytes,
            )  # fmt: skip
            CACHE_INVALIDATIONS.labels("publish").inc()
            return
        except REDIS_FAILURES as exc:
            CACHE_ERRORS.labels("snapshot").inc()
            if delay is None:
                logger.warning(
                    "snapshot of closing %s not cached (%s): readers reload it once the old "
                    "entry expires or is invalidated",
                    claimed.closing_id,
                    type(exc).__name__,
                )
                return
            await asyncio.sleep(delay)


async def invalidate_client(resources: Resources, tenant: uuid.UUID, client: uuid.UUID) -> None:
    """Drop every cached snapshot of a client (its reference data changed)."""
    try:
        async with asyncio.timeout(4 * resources.settings.cache_redis_timeout_seconds):
            await _cache(resources).invalidate(tenant, client=client)
        CACHE_INVALIDATIONS.labels("client").inc()
    except REDIS_FAILURES as exc:
        CACHE_ERRORS.labels("snapshot").inc()
        logger.warning("cache of client %s not invalidated: %s", client, type(exc).__name__)
    notify_local(Event("client", str(tenant), str(client)))


async def warm(resources: Resources) -> tuple[int, int]:
    """Load the snapshot of every open closing into Redis; (written, already current)."""
    settings = resources.settings
    cache = _cache(resources)
    async with resources.engine.connect() as conn:
        targets = await snapshot_loads.open_snapshots(conn)
    written = current = 0
    for tenant, closing in targets:
        cached = await cache.read(tenant, closing, "", None)
        known = cached.version if cached is not None and cached.payload else None
        try:
            async with resources.engine.connect() as conn:
                loaded = await snapshot_loads.load_snapshot(conn, tenant, closing, known)
        except NotFound:  # deleted since it was listed
            continue
        if loaded.document is None:
            current += 1
            continue
        await cache.store_snapshot(
            tenant, closing, loaded.client_id, loaded.version, loaded.content_hash,
            loaded.document, ttl=settings.cache_snapshot_ttl_seconds,
            compress_min_bytes=settings.cache_compress_min_bytes,
        )  # fmt: skip
        written += 1
    return written, current
