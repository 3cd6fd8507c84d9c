"""The in-process pieces of the snapshot cache: circuit breaker states, near cache rules."""

from __future__ import annotations

import gzip

from app.adapters.redis.snapshot_cache import Event, decode, encode
from app.domain.snapshot import SnapshotEntry, with_gzip
from app.services.snapshot_cache.breaker import CircuitBreaker
from app.services.snapshot_cache.near import ENTRY_OVERHEAD_BYTES, NearCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_repeated_failures_probes_once_and_recovers() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, open_seconds=5, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    breaker.success()  # consecutive failures only
    for _ in range(3):
        assert breaker.allow()
        breaker.failure()
    assert (breaker.state, breaker.opened) == ("open", 1)
    assert not breaker.allow()  # skipped: no timeout paid
    clock.now = 5.0
    assert breaker.allow() and breaker.state == "half_open"  # the one probe
    assert not breaker.allow()  # everyone else keeps skipping Redis meanwhile
    breaker.failure()  # the probe failed: open again, for another period
    assert (breaker.state, breaker.opened) == ("open", 2)
    clock.now = 9.0
    assert not breaker.allow()
    clock.now = 10.0
    assert breaker.allow()
    breaker.success()
    assert breaker.closed and breaker.allow()


def _entry(version: int, client: str = "c", size: int = 10) -> SnapshotEntry:
    return SnapshotEntry(version, f"h{version}", client, b"x" * size)


def test_near_cache_refuses_fills_that_raced_an_invalidation_and_older_versions() -> None:
    near = NearCache(max_bytes=10_000)
    started = near.generation
    near.apply(Event("publish", "t", "a"))  # announced while a fill was in flight
    near.put(("t", "a", ""), _entry(1), started)
    assert near.get(("t", "a", "")) is None
    near.put(("t", "a", ""), _entry(2), near.generation)
    near.put(("t", "a", ""), _entry(1), near.generation)  # a slower, older fill
    held = near.get(("t", "a", ""))
    assert held is not None and held[0].version == 2


def test_near_cache_unconfirms_by_closing_client_and_tenant_and_stays_bounded() -> None:
    entry_size = 10 + ENTRY_OVERHEAD_BYTES
    near = NearCache(max_bytes=2 * entry_size + 5)
    generation = near.generation
    near.put(("t", "a", ""), _entry(1, "c1"), generation)
    near.put(("t", "a", "view"), _entry(1, "c1"), generation)
    near.put(("t", "b", ""), _entry(1, "c2"), generation)
    near.put(("u", "a", ""), _entry(1, "c1"), generation)  # over the bound: the oldest go
    assert near.get(("t", "a", "")) is None and len(near) == 2 and near.size == 2 * entry_size
    near.apply(Event("client", "t", "c2"))
    assert near.fresh(("t", "b", ""), 60) is None and near.fresh(("u", "a", ""), 60) is not None
    near.put(("t", "c", ""), _entry(1, "c3"), near.generation)
    near.apply(Event("tenant", "u"))
    assert near.fresh(("u", "a", ""), 60) is None and near.fresh(("t", "c", ""), 60) is not None
    near.put(("t", "big", ""), _entry(1, size=3 * entry_size), near.generation)  # too large
    assert near.get(("t", "big", "")) is None
    near.apply(Event.parse(b"garbage"))
    assert len(near) == 0 and near.size == 0


async def test_entries_get_their_gzip_representation_once_and_redis_stores_it() -> None:
    small = SnapshotEntry(1, "h", "c", b"{}")
    assert with_gzip(small, 100) is small and encode(small) == b"r{}"
    assert await decode(b"r{}") == (b"{}", None)
    body = b'{"a": "' + b"ab" * 500 + b'"}'
    entry = with_gzip(SnapshotEntry(1, "h", "c", body), 100)
    assert entry.gzip is not None and gzip.decompress(entry.gzip) == body
    assert with_gzip(SnapshotEntry(1, "h", "c", body), 100).gzip == entry.gzip  # deterministic
    assert len(entry.gzip) < len(body) // 10 and encode(entry) == b"g" + entry.gzip
    assert await decode(encode(entry)) == (body, entry.gzip)
    assert await decode(b"z" + entry.gzip) is None  # a form this release does not write
    noise = SnapshotEntry(1, "h", "c", bytes(range(256)))
    assert with_gzip(noise, 10).gzip is None  # compression that would not save is skipped


def test_an_unconfirmed_entry_is_kept_as_the_known_version_until_confirmed_again() -> None:
    near = NearCache(max_bytes=10_000)
    near.put(("t", "a", ""), _entry(3), near.generation)
    assert near.fresh(("t", "a", ""), 60) == _entry(3)
    near.apply(Event("client", "t", "c"))  # a reference-data change of its client
    held = near.get(("t", "a", ""))
    assert held is not None and held[0] == _entry(3)  # offered as the version held…
    assert near.fresh(("t", "a", ""), 60) is None  # …never served without asking
    near.put(("t", "a", ""), _entry(3), near.generation)  # Redis or Postgres confirmed it
    assert near.fresh(("t", "a", ""), 60) == _entry(3)
    near.apply(Event("all", ""))  # the channel was lost: nothing is kept
    assert near.get(("t", "a", "")) is None
