"""Redis side of the snapshot cache: versioned entries, Lua-checked sets, tags, leases, stats."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from app.adapters.redis import keys
from app.domain.snapshot import OFF_LOOP_BYTES, SnapshotEntry
from app.settings import Settings

_SCRIPTS = dict(
    re.findall(
        r"^-- @script (\w+)\n(.*?)(?=^-- @script |\Z)",
        (Path(__file__).with_suffix(".lua")).read_text(),
        flags=re.M | re.S,
    )
)
# One leading byte says how the payload is stored: raw, or as its gzip representation (the
# bytes sent to clients that accept gzip). A form an older release wrote is a miss.
_RAW, _GZIP = b"r", b"g"
KINDS = ("snapshot", "view")
_KIND_PATTERNS = {"snapshot": "snap", "view": "snapview"}
_SCAN_LIMIT = 20_000  # admin stats stop counting there (and say so) rather than stall Redis
# Views (filters and pages) cached per closing at most; others are served without caching.
MAX_CACHED_VIEWS = 32


def encode(entry: SnapshotEntry) -> bytes:
    """The stored form of an entry: its gzip representation when it has one, else its body."""
    return _GZIP + entry.gzip if entry.gzip is not None else _RAW + entry.body


async def decode(stored: bytes) -> tuple[bytes, bytes | None] | None:
    """(body, gzip representation) back from the stored form; None for an unknown form."""
    form, payload = stored[:1], stored[1:]
    if form == _RAW:
        return payload, None
    if form != _GZIP:
        return None
    if len(payload) < OFF_LOOP_BYTES // 8:  # inflating grows it about tenfold
        return gzip.decompress(payload), payload
    return await asyncio.to_thread(gzip.decompress, payload), payload


@dataclass(frozen=True)
class Event:
    """An announcement on the cache channel: `scope` is closing, client, tenant or publish."""

    scope: str
    tenant: str
    target: str = ""

    def encode(self) -> str:
        """The message text."""
        return f"{self.scope} {self.tenant} {self.target}"

    @classmethod
    def parse(cls, data: bytes | str) -> Event:
        """Parse a message (unknown shapes become a tenant-less `all`, dropping everything)."""
        text = data.decode() if isinstance(data, bytes) else data
        parts = text.split(" ")
        if len(parts) != 3:
            return cls("all", "")
        return cls(*parts)


@dataclass(frozen=True)
class CachePolicy:
    """How entries are kept: the TTL of a whole snapshot (also of its version floor) and of a
    view, and the size from which a body also gets its gzip representation (which is then the
    form stored)."""

    snapshot_ttl: int
    view_ttl: int
    compress_min_bytes: int
    max_views: int = MAX_CACHED_VIEWS


class SnapshotCache:
    """The snapshot cache's Redis operations (every one a single round trip, except SCANs)."""

    @classmethod
    def for_settings(cls, redis: Redis, settings: Settings) -> SnapshotCache:
        """The deployment's cache: its key prefix, TTLs and compression threshold."""
        policy = CachePolicy(
            snapshot_ttl=settings.cache_snapshot_ttl_seconds,
            view_ttl=settings.cache_view_ttl_seconds,
            compress_min_bytes=settings.cache_compress_min_bytes,
        )
        return cls(redis, settings.redis_key_prefix, policy)

    def __init__(self, redis: Redis, prefix: str, policy: CachePolicy) -> None:
        self.redis = redis
        self.prefix = prefix
        self.policy = policy
        self.channel = keys.cache_events(prefix)
        self._scripts = {name: redis.register_script(text) for name, text in _SCRIPTS.items()}

    async def read(
        self, tenant: object, closing: object, view: str, known: SnapshotEntry | None = None
    ) -> SnapshotEntry | None:
        """The cached entry, or None on a miss. When `known` is still the current entry, it is
        returned itself and its payload does not travel."""
        reply = await self._scripts["read"](
            keys=[
                keys.snapshot(self.prefix, tenant, closing),
                keys.snapshot_views(self.prefix, tenant, closing),
            ],
            args=[known.version, known.content_hash, view] if known else [0, "", view],
        )
        if reply is None:
            return None
        if reply[3]:
            return known
        stored = reply[4] if len(reply) > 4 else None
        if not stored:
            return None
        decoded = await decode(stored)
        if decoded is None:
            return None
        client = reply[2].decode() if reply[2] else ""
        return SnapshotEntry(int(reply[0]), reply[1].decode(), client, *decoded)

    async def store_snapshot(self, tenant: object, closing: object, entry: SnapshotEntry) -> bool:
        """Version-checked set of the whole snapshot; False when a newer one is already there."""
        event = Event("publish", str(tenant), str(closing))
        stored = await self._scripts["set_snapshot"](
            keys=[
                keys.snapshot(self.prefix, tenant, closing),
                keys.snapshot_members(self.prefix, tenant, closing),
                keys.snapshot_tag(self.prefix, tenant, entry.client_id),
            ],
            args=[
                entry.version,
                entry.content_hash,
                entry.client_id,
                encode(entry),
                self.policy.snapshot_ttl,
                str(closing),
                self.channel,
                event.encode(),
            ],
        )
        return bool(stored)

    async def store_view(
        self, tenant: object, closing: object, view: str, entry: SnapshotEntry
    ) -> bool:
        """Store a filtered view, only while its (version, hash) is the current snapshot and
        the closing holds fewer than `max_views` views; False when it was not stored."""
        views = keys.snapshot_views(self.prefix, tenant, closing)
        stored = await self._scripts["set_view"](
            keys=[
                keys.snapshot(self.prefix, tenant, closing),
                f"{views}:{entry.version}:{entry.content_hash}:{view}",
                keys.snapshot_members(self.prefix, tenant, closing),
            ],
            args=[
                entry.version,
                entry.content_hash,
                encode(entry),
                self.policy.view_ttl,
                self.policy.snapshot_ttl,
                self.policy.max_views,
            ],
        )
        return bool(stored)

    async def invalidate(
        self,
        tenant: object,
        *,
        closings: Iterable[object] = (),
        client: object | None = None,
        event: Event | None = None,
        current: Mapping[str, int] | None = None,
    ) -> int:
        """Drop the listed closings' entries, or all of a client's (by its tag set), except
        those whose cached version is the one `current` (closing id → version) says Postgres
        serves; announce it. Returns how many closings had their cached snapshot dropped."""
        ids = [str(closing) for closing in closings]
        if event is None and client is not None:
            event = Event("client", str(tenant), str(client))
        elif event is None:
            event = (
                Event("closing", str(tenant), ids[0])
                if len(ids) == 1
                else Event("tenant", str(tenant))
            )
        dropped = await self._scripts["invalidate"](
            keys=[keys.snapshot_tag(self.prefix, tenant, client) if client is not None else ""],
            args=[
                keys.snapshot_prefix(self.prefix, tenant),
                keys.snapshot_members(self.prefix, tenant),
                self.channel,
                event.encode(),
                json.dumps({closing: str(version) for closing, version in (current or {}).items()}),
                *ids,
            ],
        )
        return int(dropped)

    async def invalidate_tenant(self, tenant: object, batch: int = 200) -> int:
        """Every cached snapshot of the tenant (admin "all": the only caller of SCAN here)."""
        start = len(keys.snapshot_prefix(self.prefix, tenant))
        found = [
            key[start:].decode()
            async for key in self.redis.scan_iter(
                match=keys.snapshot_pattern(self.prefix, tenant, "snap"), count=500
            )
        ]
        event = Event("tenant", str(tenant))
        dropped = 0
        for i in range(0, len(found), batch):
            dropped += await self.invalidate(tenant, closings=found[i : i + batch], event=event)
        if not found:  # near caches may still hold entries Redis has let expire
            await self.redis.publish(self.channel, event.encode())
        return dropped

    async def versions(self, closings: list[tuple[object, object]]) -> list[int | None]:
        """The cached version of each (tenant, closing), None where nothing is cached."""
        if not closings:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for tenant, closing in closings:
                pipe.hget(keys.snapshot(self.prefix, tenant, closing), "v")
            replies = await pipe.execute()
        return [int(reply) if reply is not None else None for reply in replies]

    async def acquire(self, tenant: object, closing: object, seconds: float) -> str | None:
        """Take the reload lease of a closing; its token, or None when another process holds it."""
        token = secrets.token_hex(8)
        taken = await self.redis.set(
            keys.snapshot_lock(self.prefix, tenant, closing),
            token,
            nx=True,
            px=max(1, int(seconds * 1000)),
        )
        return token if taken else None

    async def release(self, tenant: object, closing: object, token: str) -> None:
        """Give the lease back (only if still ours: it may have expired and been retaken)."""
        await self._scripts["release"](
            keys=[keys.snapshot_lock(self.prefix, tenant, closing)], args=[token]
        )

    async def key_stats(self, tenant: object) -> dict[str, dict[str, Any]]:
        """Keys, memory and average TTL of the tenant's entries, by kind (SCAN: admin only)."""
        stats: dict[str, dict[str, Any]] = {}
        for kind in KINDS:
            pattern = keys.snapshot_pattern(self.prefix, tenant, _KIND_PATTERNS[kind])
            found: list[bytes] = []
            async for key in self.redis.scan_iter(match=pattern, count=500):
                found.append(key)
                if len(found) >= _SCAN_LIMIT:
                    break
            complete = len(found) < _SCAN_LIMIT
            count = memory = ttl_total = 0
            for i in range(0, len(found), 500):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for key in found[i : i + 500]:
                        pipe.memory_usage(key)
                        pipe.pttl(key)
                    replies = await pipe.execute()
                for used, ttl_ms in zip(replies[::2], replies[1::2], strict=True):
                    if ttl_ms is None or ttl_ms == -2:  # expired between SCAN and the lookup
                        continue
                    count += 1
                    memory += used or 0
                    ttl_total += max(ttl_ms, 0)
            stats[kind] = {
                "keys": count,
                "memory_bytes": memory,
                "average_ttl_seconds": round(ttl_total / count / 1000, 1) if count else None,
                "complete": complete,
            }
        return stats
