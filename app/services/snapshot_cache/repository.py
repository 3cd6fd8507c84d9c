"""Redis-first snapshot reads: near cache → Redis → Postgres (written back), never stale.

Freshness: a publish or an invalidation is announced on a pub/sub channel (by the same Lua
script that changes Redis), and every process drops what it makes stale; a near entry is served
without asking Redis only while that channel is subscribed, the circuit is closed and the entry
is younger than `cache_near_max_age_seconds` (then one round trip re-checks its version, without
transferring the payload). Stale sets are refused by the version check in Redis; cold reads are
collapsed by an in-process single flight plus a cross-process lease. When Redis fails, reads go
to Postgres and a circuit breaker stops paying a Redis timeout on every request.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.exceptions import RedisError

from app.adapters.redis.snapshot_cache import Event, SnapshotCache
from app.metrics import CACHE_ERRORS, CACHE_LOOKUPS
from app.resources import Resources
from app.services.snapshot_cache.listener import CacheListener, reconcile
from app.services.snapshot_cache.loads import load_snapshot
from app.services.snapshot_cache.near import CircuitBreaker, NearCache, NearEntry
from app.services.snapshot_cache.queries import SnapshotQuery, snapshot_view

logger = logging.getLogger(__name__)

REDIS_FAILURES = (RedisError, OSError, TimeoutError)
_LOCAL: weakref.WeakSet[SnapshotRepository] = weakref.WeakSet()
_OUTCOMES = {
    (kind, outcome): CACHE_LOOKUPS.labels(kind, outcome)
    for kind in ("snapshot", "view")
    for outcome in ("hit", "miss", "bypass")
}


@dataclass(frozen=True)
class Served:
    """A body to send, its snapshot's content hash, and where it came from (X-Cache)."""

    body: bytes
    version: int
    content_hash: str
    client_id: str
    outcome: str  # hit: no Postgres read; miss: read from Postgres; bypass: Redis skipped


_Loader = Callable[[], Awaitable[Served]]
_WHOLE = SnapshotQuery()


def view_id(query: SnapshotQuery) -> str:
    """Cache name of a filtered view ("" for the whole snapshot)."""
    return "" if query.is_whole() else hashlib.sha256(repr(query).encode()).hexdigest()[:16]


def notify_local(event: Event) -> None:
    """Apply an event to this process's near caches at once (pub/sub brings it to the others)."""
    for repository in list(_LOCAL):
        repository.near.apply(event)


# The listener notices its stop flag within one ping period (1 s).
SHUTDOWN_WAIT_SECONDS = 3.0


class SnapshotRepository:
    """One per process: the near cache, the breaker, the single flights and the listener."""

    def __init__(self, resources: Resources) -> None:
        settings = resources.settings
        self.settings = settings
        self.engine = resources.engine
        self.cache = SnapshotCache(resources.redis, settings.redis_key_prefix)
        self.near = NearCache(settings.cache_near_max_entries, settings.cache_near_max_bytes)
        self.breaker = CircuitBreaker(
            settings.cache_breaker_failures, settings.cache_breaker_open_seconds
        )
        self.listener = CacheListener(self.cache, self.near)
        self.postgres_loads = 0  # whole-document reads from Postgres (the stampede bound)
        self._flights: dict[tuple[str, ...], asyncio.Future[Served]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        _LOCAL.add(self)

    @property
    def subscribed(self) -> bool:
        """Whether the invalidation channel is followed (near entries may be trusted)."""
        return self.listener.subscribed

    def start(self) -> None:
        """Start the listener and the reconciler (they run for as long as the process lives)."""
        self._tasks = [
            asyncio.create_task(self.listener.run(), name="snapshot-cache-listener"),
            asyncio.create_task(self._reconcile_forever(), name="snapshot-cache-reconciler"),
        ]

    async def aclose(self) -> None:
        """Stop the background tasks (bounded: shutdown must never hang on Redis)."""
        _LOCAL.discard(self)
        self.listener.stop()
        for task in self._tasks:
            task.cancel()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=SHUTDOWN_WAIT_SECONDS)
        if pending:
            logger.warning("snapshot cache: %d background task(s) did not stop", len(pending))

    async def reconcile(self) -> int:
        """Drop cached snapshots older than Postgres's recent publishes (see cache_background)."""
        window = self.settings.cache_snapshot_ttl_seconds
        dropped = await reconcile(self.engine, self.cache, window)
        for tenant, closing in dropped:  # at once here; other processes hear it by pub/sub
            notify_local(Event("closing", str(tenant), str(closing)))
        return len(dropped)

    async def _reconcile_forever(self) -> None:
        period = self.settings.cache_reconcile_seconds
        while period > 0:
            await asyncio.sleep(period)
            if not self.breaker.closed:
                continue
            try:
                await self.reconcile()
            except Exception as exc:  # Postgres or Redis away: the next period tries again
                logger.debug("snapshot cache reconcile failed: %s", type(exc).__name__)

    def fresh(self, tenant: object, closing: object, view: str) -> Served | None:
        """The near entry if it may be served without asking Redis (no I/O): the invalidation
        channel is subscribed, the circuit is closed and the entry is young enough."""
        entry = self.near.get((str(tenant), str(closing), view))
        if (
            entry is None
            or not self.subscribed
            or not self.breaker.closed
            or time.monotonic() - entry.stored_at >= self.settings.cache_near_max_age_seconds
        ):
            return None
        _OUTCOMES["view" if view else "snapshot", "hit"].inc()
        return _served(entry, "hit")

    async def get(self, tenant: uuid.UUID, closing: uuid.UUID, query: SnapshotQuery) -> Served:
        """The snapshot (or view) body for the tenant's closing; NotFound as Postgres says."""
        view = view_id(query)
        kind = "view" if view else "snapshot"
        served = self.fresh(tenant, closing, view)
        if served is not None:
            return served
        key = (str(tenant), str(closing), view)
        entry = self.near.get(key)
        if not self.breaker.allow():
            return await self._bypass(key, query, entry)
        generation = self.near.generation
        known = (entry.version, entry.content_hash) if entry is not None else None
        try:
            async with asyncio.timeout(self.settings.cache_redis_timeout_seconds):
                cached = await self.cache.read(tenant, closing, view, known)
        except REDIS_FAILURES as exc:
            self.redis_failed(kind, exc)
            return await self._bypass(key, query, entry)
        self.breaker.success()
        if cached is not None and (cached.same or cached.payload is not None):
            body = entry.body if cached.same and entry is not None else cached.payload
            assert body is not None
            fresh = NearEntry(
                cached.version, cached.content_hash, cached.client_id, body, time.monotonic()
            )
            self.near.put(key, fresh, generation)
            _OUTCOMES[kind, "hit"].inc()
            return _served(fresh, "hit")
        _OUTCOMES[kind, "miss"].inc()
        if not view:
            served = await self._single_flight(key[:2], lambda: self._fill(tenant, closing))
        else:
            served = await self._view_from(key, query, await self.get(tenant, closing, _WHOLE))
        self.near.put(key, _entry(served), generation)
        return served

    def redis_failed(self, kind: str, exc: BaseException) -> None:
        """Count a Redis failure and feed the breaker."""
        CACHE_ERRORS.labels(kind).inc()
        self.breaker.failure()
        logger.debug("snapshot cache: Redis failed (%s)", type(exc).__name__)

    async def _view_from(
        self, key: tuple[str, str, str], query: SnapshotQuery, doc: Served
    ) -> Served:
        """Filter and page the whole snapshot, and store the view for the next readers."""
        body = snapshot_view(doc.body, query)
        if doc.outcome != "bypass" and self.breaker.allow():
            try:
                async with asyncio.timeout(self.settings.cache_redis_timeout_seconds):
                    await self.cache.store_view(
                        key[0], key[1], doc.version, doc.content_hash, key[2], body,
                        ttl=self.settings.cache_view_ttl_seconds,
                        members_ttl=self.settings.cache_snapshot_ttl_seconds,
                        compress_min_bytes=self.settings.cache_compress_min_bytes,
                    )  # fmt: skip
                self.breaker.success()
            except REDIS_FAILURES as exc:
                self.redis_failed("view", exc)
        return Served(body, doc.version, doc.content_hash, doc.client_id, doc.outcome)

    async def _single_flight(self, flight_key: tuple[str, ...], load: _Loader) -> Served:
        """Run `load` once for all concurrent callers with the same key."""
        flight = self._flights.get(flight_key)
        if flight is None:
            flight = asyncio.ensure_future(load())
            self._flights[flight_key] = flight
            flight.add_done_callback(lambda _: self._flights.pop(flight_key, None))
        return await asyncio.shield(flight)

    async def _fill(self, tenant: uuid.UUID, closing: uuid.UUID) -> Served:
        """Reload a missing snapshot under a cross-process lease, and write it back."""
        try:
            async with asyncio.timeout(self.settings.cache_redis_timeout_seconds):
                token = await self.cache.acquire(
                    tenant, closing, self.settings.cache_fill_lease_seconds
                )
        except REDIS_FAILURES as exc:
            self.redis_failed("snapshot", exc)
            return await self._load(tenant, closing, None, "bypass")
        if token is None:  # another process is reloading it: wait for its write, bounded
            peer = await self._wait_for_peer(tenant, closing)
            if peer is not None:
                return peer
        try:
            served = await self._load(tenant, closing, None, "miss")
            try:
                async with asyncio.timeout(self.settings.cache_redis_timeout_seconds):
                    await self.cache.store_snapshot(
                        tenant, closing, served.client_id, served.version, served.content_hash,
                        served.body, ttl=self.settings.cache_snapshot_ttl_seconds,
                        compress_min_bytes=self.settings.cache_compress_min_bytes,
                    )  # fmt: skip
            except REDIS_FAILURES as exc:
                self.redis_failed("snapshot", exc)
            return served
        finally:
            if token is not None:
                try:
                    await self.cache.release(tenant, closing, token)
                except REDIS_FAILURES as exc:  # the lease expires by itself
                    self.redis_failed("snapshot", exc)

    async def _wait_for_peer(self, tenant: uuid.UUID, closing: uuid.UUID) -> Served | None:
        """Poll Redis until the lease holder has written the snapshot, up to its lease."""
        deadline = time.monotonic() + self.settings.cache_fill_lease_seconds
        delay = 0.005
        while time.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
            try:
                cached = await self.cache.read(tenant, closing, "", None)
            except REDIS_FAILURES as exc:
                self.redis_failed("snapshot", exc)
                return None
            if cached is not None and cached.payload is not None:
                return Served(
                    cached.payload, cached.version, cached.content_hash, cached.client_id, "hit"
                )
        return None

    async def _load(
        self, tenant: uuid.UUID, closing: uuid.UUID, near: NearEntry | None, outcome: str
    ) -> Served:
        """Read the snapshot from Postgres (its document only when `near` is not current)."""
        known = near.version if near is not None else None
        async with self.engine.connect() as conn:
            row = await load_snapshot(conn, tenant, closing, known)
        if row.document is None:
            assert near is not None
            return _served(near, outcome)
        self.postgres_loads += 1
        return Served(row.document, row.version, row.content_hash, row.client_id, outcome)

    async def _bypass(
        self, key: tuple[str, str, str], query: SnapshotQuery, entry: NearEntry | None
    ) -> Served:
        """Redis is skipped or failing: answer from Postgres, reusing a near entry it confirms."""
        _OUTCOMES["view" if key[2] else "snapshot", "bypass"].inc()
        tenant, closing = uuid.UUID(key[0]), uuid.UUID(key[1])
        doc_entry = self.near.get((key[0], key[1], "")) if key[2] else entry
        known = doc_entry or entry  # Postgres sends the document only if this is not current
        served = await self._single_flight(
            ("bypass", key[0], key[1], key[2] if known is entry else ""),
            lambda: self._load(tenant, closing, known, "bypass"),
        )
        if not key[2] or (known is entry and entry is not None and served.body is entry.body):
            return served
        if entry is not None and entry.version == served.version:  # `served` is the document
            return _served(entry, "bypass")
        return Served(snapshot_view(served.body, query), served.version, served.content_hash,
                      served.client_id, "bypass")  # fmt: skip


def _served(entry: NearEntry, outcome: str) -> Served:
    return Served(entry.body, entry.version, entry.content_hash, entry.client_id, outcome)


def _entry(served: Served) -> NearEntry:
    return NearEntry(
        served.version, served.content_hash, served.client_id, served.body, time.monotonic()
    )
