"""The near cache: ready-to-send snapshot entries in this process's memory, byte-bounded LRU."""

from __future__ import annotations

import time
from collections.abc import Callable

from cachetools import LRUCache

from app.adapters.redis.snapshot_cache import Event
from app.domain.snapshot import SnapshotEntry

NearKey = tuple[str, str, str]  # (tenant, closing, view; "" for the whole snapshot)
Held = tuple[SnapshotEntry, float]  # the entry and when it was confirmed (monotonic seconds)
# When an entry an event made stale was confirmed: never, so it is never served as it is.
UNCONFIRMED = float("-inf")
# What an entry costs beyond its body (the key, the tuples, the dict slot): many tiny views
# must not hold far more memory than their bodies add up to.
ENTRY_OVERHEAD_BYTES = 512


def _held_size(held: Held) -> int:
    entry = held[0]
    return len(entry.body) + len(entry.gzip or b"") + ENTRY_OVERHEAD_BYTES


class NearCache:
    """LRU of ready bodies, at most `max_bytes` in all. Every invalidation bumps `generation`,
    and a fill that started under an older generation is not stored: an invalidation racing a
    fill always wins.

    What an announced publish or invalidation makes stale is kept, unconfirmed: it is never
    served again as it is, but offered to Redis and Postgres as the version already held, so
    that an entry that did not change after all (a client's invalidation for a reference-data
    change, whose re-runs have not published yet; this process's own cache fill, announced
    like a publish) is confirmed without its payload travelling or being composed again."""

    def __init__(self, max_bytes: int) -> None:
        self.generation = 0
        self._entries: LRUCache[NearKey, Held] = LRUCache(max(max_bytes, 1), getsizeof=_held_size)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """Bytes held (bodies plus the per-entry overhead)."""
        return int(self._entries.currsize)

    def get(self, key: NearKey) -> Held | None:
        """The entry and when it was confirmed (UNCONFIRMED once an event made it stale),
        marked recently used."""
        return self._entries.get(key)

    def fresh(self, key: NearKey, max_age: float) -> SnapshotEntry | None:
        """The entry if it was confirmed less than `max_age` seconds ago."""
        held = self._entries.get(key)
        if held is None or time.monotonic() - held[1] >= max_age:
            return None
        return held[0]

    def put(self, key: NearKey, entry: SnapshotEntry, generation: int) -> None:
        """Store unless invalidated since `generation`, too big, or older than what is held."""
        if generation != self.generation:
            return
        held = self._entries.get(key)
        if held is not None and held[0].version > entry.version:
            return
        try:
            self._entries[key] = (entry, time.monotonic())
        except ValueError:  # bigger than the whole cache: not kept
            self._entries.pop(key, None)

    def _unconfirm(self, stale: Callable[[NearKey, SnapshotEntry], bool]) -> None:
        self.generation += 1
        for key, (entry, _) in list(self._entries.items()):
            if stale(key, entry):
                self._entries[key] = (entry, UNCONFIRMED)

    def clear(self) -> None:
        """Forget everything (e.g. the invalidation channel was lost: messages may be missed)."""
        self.generation += 1
        self._entries.clear()

    def apply(self, event: Event) -> None:
        """Unconfirm what an announced publish or invalidation makes stale."""
        if event.scope in ("publish", "closing"):
            self._unconfirm(lambda k, e: k[0] == event.tenant and k[1] == event.target)
        elif event.scope == "client":
            self._unconfirm(lambda k, e: k[0] == event.tenant and e.client_id == event.target)
        elif event.scope == "tenant":
            self._unconfirm(lambda k, e: k[0] == event.tenant)
        else:
            self.clear()
