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
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from cachetools import LRUCache

from app.adapters.cpu_pool import CpuPool
from app.adapters.redis import REDIS_FAILURES
from app.adapters.redis.deadline import redis_deadline
from app.adapters.redis.snapshot_cache import Event, SnapshotCache
from app.domain.snapshot import (
    WHOLE,
    SnapshotEntry,
    SnapshotQuery,
    ViewIndex,
    indexed_view,
    view_index,
)
from app.metrics import CACHE_ERRORS, CACHE_LOOKUPS
from app.resources import Resources
from app.services.snapshot_cache import local
from app.services.snapshot_cache.breaker import CircuitBreaker
from app.services.snapshot_cache.encoding import compressed
from app.services.snapshot_cache.listener import CacheListener, reconcile
from app.services.snapshot_cache.loads import load_snapshot
from app.services.snapshot_cache.near import NearCache, NearKey

logger = logging.getLogger(__name__)

_OUTCOMES = {
    (kind, outcome): CACHE_LOOKUPS.labels(kind, outcome)
    for kind in ("snapshot", "view")
    for outcome in ("hit", "miss", "bypass")
}
# The listener notices its stop flag within one ping period (1 s).
SHUTDOWN_WAIT_SECONDS = 3.0
# View indexes kept in each process, in bytes: a few large snapshots' worth.
INDEX_CACHE_BYTES = 128 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Served:
    """An entry to send, and where it came from (X-Cache): hit, no Postgres read; miss, read
    from Postgres; bypass, Redis skipped."""

    entry: SnapshotEntry
    outcome: str


_Loader = Callable[[], Awaitable[Served]]
# (tenant, closing, version, content hash): a version's document, and so its index, never change.
_IndexKey = tuple[str, str, int, str]


class SnapshotRepository:
    """One per process: the near cache, the breaker, the single flights and the listener."""

    def __init__(self, resources: Resources, cpu: CpuPool) -> None:
        settings = resources.settings
        self.cpu = cpu  # large snapshots are indexed for views there, off the event loop
        self._indexes: LRUCache[_IndexKey, ViewIndex] = LRUCache(
            INDEX_CACHE_BYTES, getsizeof=lambda index: index.size
        )
        self._indexing: dict[_IndexKey, asyncio.Future[ViewIndex]] = {}
        self.settings = settings
        self.engine = resources.engine
        self.reader = resources.reader
        self.cache = SnapshotCache.for_settings(resources.redis, settings)
        self.near = NearCache(settings.cache_near_max_bytes)
        self.breaker = CircuitBreaker(
            settings.cache_breaker_failures, settings.cache_breaker_open_seconds
        )
        self.listener = CacheListener(self.cache, self.near)
        self.postgres_loads = 0  # whole-document reads from Postgres (the stampede bound)
        self._timeout = settings.cache_redis_timeout_seconds
        self._flights: dict[tuple[str, ...], asyncio.Future[Served]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        local.register(self.near)

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
        local.unregister(self.near)
        self.listener.stop()
        for task in self._tasks:
            task.cancel()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=SHUTDOWN_WAIT_SECONDS)
        if pending:
            logger.warning("snapshot cache: %d background task(s) did not stop", len(pending))

    async def reconcile(self) -> int:
        """Drop cached snapshots older than Postgres's recent publishes (see listener)."""
        window = self.settings.cache_snapshot_ttl_seconds
        dropped = await reconcile(self.reader, self.cache, window)
        for tenant, closing in dropped:  # at once here; other processes hear it by pub/sub
            local.notify_local(Event("closing", str(tenant), str(closing)))
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
        if not self.subscribed or not self.breaker.closed:
            return None
        key = (str(tenant), str(closing), view)
        entry = self.near.fresh(key, self.settings.cache_near_max_age_seconds)
        if entry is None:
            return None
        _OUTCOMES["view" if view else "snapshot", "hit"].inc()
        return Served(entry, "hit")

    async def get(self, tenant: uuid.UUID, closing: uuid.UUID, query: SnapshotQuery) -> Served:
        """The snapshot (or view) for the tenant's closing; NotFound as Postgres says."""
        view = query.view_id()
        kind = "view" if view else "snapshot"
        served = self.fresh(tenant, closing, view)
        if served is not None:
            return served
        key = (str(tenant), str(closing), view)
        held = self.near.get(key)
        known = held[0] if held is not None else None
        if not self.breaker.allow():
            return await self._bypass(key, query, known)
        generation = self.near.generation
        try:
            async with redis_deadline(self._timeout):
                cached = await self.cache.read(tenant, closing, view, known)
        except REDIS_FAILURES as exc:
            self.redis_failed(kind, exc)
            return await self._bypass(key, query, known)
        self.breaker.success()
        if cached is not None:
            self.near.put(key, cached, generation)
            _OUTCOMES[kind, "hit"].inc()
            return Served(cached, "hit")
        _OUTCOMES[kind, "miss"].inc()
        if not view:
            served = await self._single_flight(key[:2], lambda: self._fill(tenant, closing, known))
        else:
            whole = await self.get(tenant, closing, WHOLE)
            # One computation for all concurrent readers of this view of this version.
            flight = (*key, str(whole.entry.version))
            served = await self._single_flight(flight, lambda: self._view_from(key, query, whole))
        self.near.put(key, served.entry, generation)
        return served

    def redis_failed(self, kind: str, exc: BaseException) -> None:
        """Count a Redis failure and feed the breaker."""
        CACHE_ERRORS.labels(kind).inc()
        self.breaker.failure()
        logger.debug("snapshot cache: Redis failed (%s)", type(exc).__name__)

    async def _view_from(self, key: NearKey, query: SnapshotQuery, whole: Served) -> Served:
        """Filter and page the whole snapshot, and store the view for the next readers."""
        entry = await self._view(key, whole.entry, query)
        if whole.outcome != "bypass" and self.breaker.allow():
            try:
                async with redis_deadline(self._timeout):
                    await self.cache.store_view(key[0], key[1], key[2], entry)
                self.breaker.success()
            except REDIS_FAILURES as exc:
                self.redis_failed("view", exc)
        return Served(entry, whole.outcome)

    async def _single_flight(self, flight_key: tuple[str, ...], load: _Loader) -> Served:
        """Run `load` once for all concurrent callers with the same key."""
        flight = self._flights.get(flight_key)
        if flight is None:
            flight = asyncio.ensure_future(load())
            self._flights[flight_key] = flight
            flight.add_done_callback(lambda _: self._flights.pop(flight_key, None))
        return await asyncio.shield(flight)

    async def _fill(
        self, tenant: uuid.UUID, closing: uuid.UUID, known: SnapshotEntry | None
    ) -> Served:
        """Reload a missing snapshot and write it back to Redis.

        With a near entry (`known`), one query asks Postgres whether it is still current and
        brings the document only when it is not: after an invalidation that left the snapshot
        as it was (a reference-data change, until its re-run publishes), that is all a read
        costs, and there is no document load for a lease to collapse (the single flight keeps
        it to one per process). Without one, the document is loaded under a cross-process
        lease."""
        if known is not None:
            served = await self._load(tenant, closing, known, "miss")
            await self._store(tenant, closing, served.entry)
            return served
        try:
            async with redis_deadline(self._timeout):
                lease = self.settings.cache_fill_lease_seconds
                token = await self.cache.acquire(tenant, closing, lease)
        except REDIS_FAILURES as exc:
            self.redis_failed("snapshot", exc)
            return await self._load(tenant, closing, known, "bypass")
        if token is None:  # another process is reloading it: wait for its write, bounded
            peer = await self._wait_for_peer(tenant, closing)
            if peer is not None:
                return peer
        try:
            served = await self._load(tenant, closing, known, "miss")
            await self._store(tenant, closing, served.entry)
            return served
        finally:
            if token is not None:
                try:
                    await self.cache.release(tenant, closing, token)
                except REDIS_FAILURES as exc:  # the lease expires by itself
                    self.redis_failed("snapshot", exc)

    async def _store(self, tenant: uuid.UUID, closing: uuid.UUID, entry: SnapshotEntry) -> None:
        """Write a snapshot read from Postgres to Redis (a failure is counted, not raised)."""
        try:
            async with redis_deadline(self._timeout):
                await self.cache.store_snapshot(tenant, closing, entry)
        except REDIS_FAILURES as exc:
            self.redis_failed("snapshot", exc)

    async def _wait_for_peer(self, tenant: uuid.UUID, closing: uuid.UUID) -> Served | None:
        """Poll Redis until the lease holder has written the snapshot, up to its lease."""
        deadline = time.monotonic() + self.settings.cache_fill_lease_seconds
        delay = 0.005
        while time.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
            try:
                cached = await self.cache.read(tenant, closing, "")
            except REDIS_FAILURES as exc:
                self.redis_failed("snapshot", exc)
                return None
            if cached is not None:
                return Served(cached, "hit")
        return None

    async def _load(
        self, tenant: uuid.UUID, closing: uuid.UUID, known: SnapshotEntry | None, outcome: str
    ) -> Served:
        """Read the snapshot from Postgres (its document only when `known` is not current)."""
        async with self.reader.connect() as conn:
            loaded = await load_snapshot(conn, tenant, closing, known.version if known else None)
        if loaded is None:
            assert known is not None
            return Served(known, outcome)
        self.postgres_loads += 1
        return Served(await self._compressed(loaded), outcome)

    async def _bypass(
        self, key: NearKey, query: SnapshotQuery, held: SnapshotEntry | None
    ) -> Served:
        """Redis is skipped or failing: answer from Postgres, reusing a near entry it confirms.
        Postgres sends the whole document only when no near entry is current."""
        _OUTCOMES["view" if key[2] else "snapshot", "bypass"].inc()
        tenant, closing = uuid.UUID(key[0]), uuid.UUID(key[1])
        whole = self.near.get((key[0], key[1], "")) if key[2] else None
        known = whole[0] if whole is not None else held
        flight = ("bypass", key[0], key[1], "" if whole is not None else key[2])
        served = await self._single_flight(
            flight, lambda: self._load(tenant, closing, known, "bypass")
        )
        if not key[2]:
            return served
        if held is not None and held.version == served.entry.version:  # the view is current
            return Served(held, "bypass")
        return Served(await self._view(key, served.entry, query), "bypass")

    async def _compressed(self, entry: SnapshotEntry) -> SnapshotEntry:
        return await compressed(entry, self.cache.policy.compress_min_bytes)

    async def _view(
        self, key: NearKey, whole: SnapshotEntry, query: SnapshotQuery
    ) -> SnapshotEntry:
        """Filter and page a snapshot, through its ViewIndex: parsing the document is done once
        per version (in the CPU pool when it is large), and from then on a view only copies
        the incidences it shows, however many different views are asked for. The view's gzip
        representation is made here too, once."""
        index_key = (key[0], key[1], whole.version, whole.content_hash)
        index = self._indexes.get(index_key)
        if index is None:
            building = self._indexing.get(index_key)
            if building is None:
                building = asyncio.ensure_future(
                    self.cpu.run(len(whole.body), view_index, whole.body)
                )
                self._indexing[index_key] = building
                building.add_done_callback(lambda _: self._indexing.pop(index_key, None))
            index = await asyncio.shield(building)
            with contextlib.suppress(ValueError):  # bigger than the whole cache: not kept
                self._indexes[index_key] = index
        body = indexed_view(index, query)
        return await self._compressed(replace(whole, body=body, gzip=None))
