"""Snapshot cache writes outside the read path: after a publish, on a reference-data change,
and `cache warm`. All best effort: Redis being down never fails the work that triggered them."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.exc import SQLAlchemyError
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    wait_chain,
    wait_fixed,
)

from app.adapters.redis import REDIS_FAILURES
from app.adapters.redis.deadline import redis_deadline
from app.adapters.redis.snapshot_cache import Event, SnapshotCache
from app.domain.errors import NotFound
from app.domain.snapshot import SnapshotEntry
from app.metrics import CACHE_ERRORS, CACHE_INVALIDATIONS
from app.resources import Resources
from app.services.snapshot_cache import loads
from app.services.snapshot_cache.encoding import compressed
from app.services.snapshot_cache.local import notify_local

logger = logging.getLogger(__name__)

# After a publish the new snapshot must replace the old one in Redis, or readers would be served
# the old one until its TTL: a failed write is retried for a few seconds before giving up.
PUBLISH_RETRY_DELAYS = (0.1, 0.3, 1.0, 2.0)


def _count_failure(_: object) -> None:
    CACHE_ERRORS.labels("snapshot").inc()


async def cache_published(
    resources: Resources, closing: uuid.UUID, revision: int, content_hash: str, body: bytes
) -> None:
    """Write a just-committed served snapshot (a publish's, or a review's) to Redis, so the
    first read is a hit, and announce it. Its revision is its version. Never raises: what was
    committed stands whatever happens here."""
    try:
        async with resources.reader.connect() as conn:
            tenant, client = await loads.owner(conn, closing)
        entry = SnapshotEntry(revision, content_hash, str(client), body)
        await _store_published(resources, tenant, closing, entry)
        notify_local(Event("publish", str(tenant), str(closing)))
    except Exception:
        logger.exception("could not cache the snapshot of closing %s", closing)


async def refresh(resources: Resources, tenant: uuid.UUID, closing: uuid.UUID) -> None:
    """Serve the closing's snapshot as Postgres has it now (after a review, say): recompose it,
    write it to Redis and announce it, before the change is answered. Never raises."""
    try:
        async with resources.reader.connect() as conn:
            entry = await loads.load_snapshot(conn, tenant, closing)
        assert entry is not None  # no known version was given: the document is always read
        await _store_published(resources, tenant, closing, entry)
        notify_local(Event("publish", str(tenant), str(closing)))
    except Exception:
        logger.exception("could not refresh the cached snapshot of closing %s", closing)


async def _store_published(
    resources: Resources, tenant: uuid.UUID, closing: uuid.UUID, entry: SnapshotEntry
) -> None:
    cache = SnapshotCache.for_settings(resources.redis, resources.settings)
    entry = await compressed(entry, cache.policy.compress_min_bytes)
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(REDIS_FAILURES),
        wait=wait_chain(*(wait_fixed(delay) for delay in PUBLISH_RETRY_DELAYS)),
        stop=stop_after_attempt(len(PUBLISH_RETRY_DELAYS) + 1),
        after=_count_failure,
    )
    try:
        await retrying(cache.store_snapshot, tenant, closing, entry)
    except RetryError as exc:
        logger.warning(
            "snapshot of closing %s not cached (%s): readers reload it once the old entry "
            "expires or is invalidated",
            closing,
            type(exc.last_attempt.exception()).__name__,
        )
        return
    CACHE_INVALIDATIONS.labels("publish").inc()


async def invalidate_client(resources: Resources, tenant: uuid.UUID, client: uuid.UUID) -> None:
    """Invalidate a client's cached snapshots (its reference data changed): each is dropped
    unless it is still the revision Postgres serves.

    What is served changes only when a re-run publishes (the previous snapshot stays served
    until then, SPEC §5), and that publish replaces the entry. Dropping an entry that is still
    current would only turn the next reads into misses that reload it, on every change."""
    cache = SnapshotCache.for_settings(resources.redis, resources.settings)
    try:
        async with resources.reader.connect() as conn:
            current = await loads.served_revisions(conn, tenant, client)
    except (SQLAlchemyError, OSError) as exc:  # then nothing is confirmed: all is dropped
        logger.warning(
            "cached snapshots of client %s not confirmed: %s", client, type(exc).__name__
        )
        current = {}
    try:
        async with redis_deadline(4 * resources.settings.cache_redis_timeout_seconds):
            await cache.invalidate(tenant, client=client, current=current)
        CACHE_INVALIDATIONS.labels("client").inc()
    except REDIS_FAILURES as exc:
        CACHE_ERRORS.labels("snapshot").inc()
        logger.warning("cache of client %s not invalidated: %s", client, type(exc).__name__)
    notify_local(Event("client", str(tenant), str(client)))


async def warm(resources: Resources) -> tuple[int, int]:
    """Load the snapshot of every open closing into Redis; (written, already current)."""
    cache = SnapshotCache.for_settings(resources.redis, resources.settings)
    async with resources.reader.connect() as conn:
        targets = await loads.open_snapshots(conn)
    written = current = 0
    for tenant, closing in targets:
        cached = await cache.read(tenant, closing, "")
        try:
            async with resources.reader.connect() as conn:
                loaded = await loads.load_snapshot(
                    conn, tenant, closing, cached.version if cached else None
                )
        except NotFound:  # deleted since it was listed
            continue
        if loaded is None:
            current += 1
            continue
        await cache.store_snapshot(
            tenant, closing, await compressed(loaded, cache.policy.compress_min_bytes)
        )
        written += 1
    return written, current
