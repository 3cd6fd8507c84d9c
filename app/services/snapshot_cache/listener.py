"""Background duties of a process's snapshot cache: following the invalidation channel, and
reconciling Redis with Postgres for snapshots published while Redis could not be written."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from redis.asyncio.client import PubSub
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.redis.snapshot_cache import Event, SnapshotCache
from app.services.snapshot_cache.loads import recent_snapshots
from app.services.snapshot_cache.near import NearCache

logger = logging.getLogger(__name__)


class CacheListener:
    """Applies every announced publish/invalidation to the near cache. `subscribed` is True only
    between Redis's subscribe confirmation and the loss of the connection: near entries may be
    trusted without asking Redis only then (whatever is announced meanwhile is unknown)."""

    def __init__(self, cache: SnapshotCache, near: NearCache, ping_every: float = 1.0) -> None:
        self.cache = cache
        self.near = near
        self.ping_every = ping_every
        self.subscribed = False
        # redis-py 5 can swallow a task cancellation inside get_message(), so the loops also
        # watch this flag, which they see within one ping period.
        self._stopped = False

    def stop(self) -> None:
        """Ask run() to return (cancel the task too; this covers a swallowed cancellation)."""
        self._stopped = True

    async def run(self) -> None:
        """Follow the channel for as long as the process lives, reconnecting with backoff."""
        backoff = 0.1
        while not self._stopped:
            pubsub = self.cache.redis.pubsub()
            try:
                await pubsub.subscribe(self.cache.channel)
                await self._follow(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("snapshot cache listener: %s", type(exc).__name__)
            finally:
                if self.subscribed:
                    backoff = 0.1
                self.subscribed = False
                self.near.clear()
                await asyncio.shield(_close_quietly(pubsub))
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _follow(self, pubsub: PubSub) -> None:
        """Apply messages until the connection is lost (no answer to 3 pings means lost)."""
        last_seen = time.monotonic()
        while not self._stopped:
            message = await pubsub.get_message(timeout=self.ping_every)
            now = time.monotonic()
            if message is None:
                if now - last_seen > 3 * self.ping_every:
                    raise ConnectionError("the invalidation channel stopped answering")
                await pubsub.ping()
                continue
            last_seen = now
            if message["type"] == "message":
                self.near.apply(Event.parse(message["data"]))
            elif message["type"] == "subscribe":
                self.near.clear()
                self.subscribed = True


async def reconcile(
    engine: AsyncEngine, cache: SnapshotCache, window_seconds: float
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Drop the cached snapshots that are older than the one Postgres serves, among those
    published in the last `window_seconds`: a publisher that could not write Redis (down, or
    partitioned) leaves the previous version there. Returns the (tenant, closing) dropped."""
    async with engine.connect() as conn:
        recent = await recent_snapshots(conn, window_seconds)
    cached = await cache.versions([(tenant, closing) for tenant, closing, _ in recent])
    stale = [
        (tenant, closing)
        for (tenant, closing, version), held in zip(recent, cached, strict=True)
        if held is not None and held < version
    ]
    for tenant, closing in stale:
        await cache.invalidate(tenant, closings=[closing])  # announced to every process
    if stale:
        logger.warning("snapshot cache: %d outdated entr(y/ies) dropped", len(stale))
    return stale


async def _close_quietly(pubsub: PubSub) -> None:
    try:
        await pubsub.aclose()
    except Exception as exc:
        logger.debug("closing the pub/sub connection failed: %s", type(exc).__name__)
