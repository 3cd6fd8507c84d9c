"""In-process parts of the snapshot cache: a byte-bounded LRU near cache and a circuit breaker."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from app.adapters.redis.snapshot_cache import Event

NearKey = tuple[str, str, str]  # (tenant, closing, view; "" for the whole snapshot)


@dataclass(frozen=True)
class NearEntry:
    """A response body ready to send, with the version it belongs to."""

    version: int
    content_hash: str
    client_id: str
    body: bytes
    stored_at: float


class NearCache:
    """LRU of ready bodies. Every drop bumps `generation`, and a fill that started under an
    older generation is not stored: an invalidation racing a fill always wins."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.generation = 0
        self.size = 0
        self._entries: OrderedDict[NearKey, NearEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: NearKey) -> NearEntry | None:
        """The entry, marked recently used."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: NearKey, entry: NearEntry, generation: int) -> None:
        """Store unless invalidated since `generation`, too big, or older than what is held."""
        if generation != self.generation or len(entry.body) > self.max_bytes:
            return
        held = self._entries.get(key)
        if held is not None:
            if held.version > entry.version:
                return
            self.size -= len(held.body)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        self.size += len(entry.body)
        while self._entries and (
            len(self._entries) > self.max_entries or self.size > self.max_bytes
        ):
            _, evicted = self._entries.popitem(last=False)
            self.size -= len(evicted.body)

    def _drop(self, keep: Callable[[NearKey, NearEntry], bool]) -> None:
        self.generation += 1
        for key in [k for k, e in self._entries.items() if not keep(k, e)]:
            self.size -= len(self._entries.pop(key).body)

    def clear(self) -> None:
        """Forget everything (e.g. the invalidation channel was lost: messages may be missed)."""
        self._drop(lambda key, entry: False)

    def apply(self, event: Event) -> None:
        """Drop what an announced publish or invalidation makes stale."""
        if event.scope in ("publish", "closing"):
            self._drop(lambda k, e: not (k[0] == event.tenant and k[1] == event.target))
        elif event.scope == "client":
            self._drop(lambda k, e: not (k[0] == event.tenant and e.client_id == event.target))
        elif event.scope == "tenant":
            self._drop(lambda k, e: k[0] != event.tenant)
        else:
            self.clear()


class CircuitBreaker:
    """Closed → open after `failures` consecutive errors; open skips Redis for `open_seconds`;
    then half-open lets one probe through: success closes it, failure opens it again."""

    def __init__(
        self, failures: int, open_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = failures
        self.open_seconds = open_seconds
        self.clock = clock
        self.state = "closed"
        self.failures = 0
        self.opened = 0  # how many times it opened (for stats and tests)
        self._since = 0.0

    @property
    def closed(self) -> bool:
        """True when Redis is trusted."""
        return self.state == "closed"

    def allow(self) -> bool:
        """Whether this call may use Redis (in half-open state: only the one probe)."""
        if self.state == "closed":
            return True
        if self.clock() - self._since < self.open_seconds:
            return False
        # Open long enough (or a probe never reported back): this caller is the probe.
        self.state = "half_open"
        self._since = self.clock()
        return True

    def success(self) -> None:
        """A Redis call worked."""
        self.state = "closed"
        self.failures = 0

    def failure(self) -> None:
        """A Redis call failed or timed out."""
        self.failures += 1
        if self.state == "half_open" or self.failures >= self.threshold:
            if self.state != "open":
                self.opened += 1
            self.state = "open"
            self._since = self.clock()
