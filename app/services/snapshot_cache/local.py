"""Cache events applied in this process at once: the near caches of this process hear their own
process's publishes and invalidations without waiting for the pub/sub round trip (other
processes hear them on the channel). Write paths use this, never the read repository."""

from __future__ import annotations

import weakref

from app.adapters.redis.snapshot_cache import Event
from app.services.snapshot_cache.near import NearCache

_NEAR_CACHES: weakref.WeakSet[NearCache] = weakref.WeakSet()


def register(near: NearCache) -> None:
    """Have `near` hear this process's events (for as long as it lives)."""
    _NEAR_CACHES.add(near)


def unregister(near: NearCache) -> None:
    """Stop telling `near` (its repository is closing)."""
    _NEAR_CACHES.discard(near)


def notify_local(event: Event) -> None:
    """Apply an event to this process's near caches at once."""
    for near in list(_NEAR_CACHES):
        near.apply(event)
