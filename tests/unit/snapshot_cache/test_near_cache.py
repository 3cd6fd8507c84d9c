"""The in-process pieces of the snapshot cache: circuit breaker states, near cache rules."""

from __future__ import annotations

from app.adapters.redis.snapshot_cache import Event, decode, encode
from app.domain.snapshot import SnapshotEntry
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


def test_near_cache_drops_by_closing_client_and_tenant_and_stays_bounded() -> None:
    entry_size = 10 + ENTRY_OVERHEAD_BYTES
    near = NearCache(max_bytes=2 * entry_size + 5)
    generation = near.generation
    near.put(("t", "a", ""), _entry(1, "c1"), generation)
    near.put(("t", "a", "view"), _entry(1, "c1"), generation)
    near.put(("t", "b", ""), _entry(1, "c2"), generation)
    near.put(("u", "a", ""), _entry(1, "c1"), generation)  # over the bound: the oldest go
    assert near.get(("t", "a", "")) is None and len(near) == 2 and near.size == 2 * entry_size
    near.apply(Event("client", "t", "c2"))
    assert near.get(("t", "b", "")) is None and near.get(("u", "a", "")) is not None
    near.put(("t", "c", ""), _entry(1, "c3"), near.generation)
    near.apply(Event("tenant", "u"))
    assert near.get(("u", "a", "")) is None and near.get(("t", "c", "")) is not None
    near.put(("t", "big", ""), _entry(1, size=3 * entry_size), near.generation)  # too large
    assert near.get(("t", "big", "")) is None
    near.apply(Event.parse(b"garbage"))
    assert len(near) == 0 and near.size == 0


def test_payload_encoding() -> None:
    assert encode(b"{}", 100) == b"r{}" and decode(b"r{}") == b"{}"
    body = b'{"a": "' + b"ab" * 500 + b'"}'
    packed = encode(body, 100)
    assert packed[:1] == b"z" and len(packed) < len(body) // 10 and decode(packed) == body
    noise = bytes(range(256))
    assert encode(noise, 10)[:1] == b"r"  # compression that would not save is skipped
