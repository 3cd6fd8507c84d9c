"""Every Redis key the service writes, in one place, under the deployment's prefix."""

from __future__ import annotations


def workers(prefix: str) -> str:
    """Sorted set of worker ids scored by their last heartbeat (unix seconds)."""
    return f"{prefix}:workers"


def job_stats(prefix: str) -> str:
    """Hash of counters that workers add to and /metrics reads (job outcomes, durations)."""
    return f"{prefix}:stats:jobs"


def job_minute(prefix: str, minute: int) -> str:
    """Hash of one minute's succeeded iterations and movements (minute = unix time // 60)."""
    return f"{prefix}:stats:jobs:{minute}"


def rate_limit(prefix: str, policy: str, subject: str) -> str:
    """Sorted set of the admitted requests' Redis times (µs) of one subject under one policy."""
    return f"{prefix}:rl:{policy}:{subject}"


# --- snapshot cache (app/adapters/redis/snapshot_cache.lua describes the layout) -------------
# Every key carries the tenant, so one tenant's lookup can never reach another's entry.


def snapshot(prefix: str, tenant: object, closing: object) -> str:
    """Hash of a closing's cached snapshot: version, content hash, client and payload."""
    return f"{prefix}:snap:{tenant}:{closing}"


def snapshot_prefix(prefix: str, tenant: object) -> str:
    """`snapshot()` without the closing id (the invalidation script appends it)."""
    return f"{prefix}:snap:{tenant}:"


def snapshot_views(prefix: str, tenant: object, closing: object) -> str:
    """Prefix of a closing's view keys; `:{version}:{hash}:{view}` completes one."""
    return f"{prefix}:snapview:{tenant}:{closing}"


def snapshot_members(prefix: str, tenant: object, closing: object = "") -> str:
    """Set of the view keys written for a closing (without `closing`: the prefix)."""
    return f"{prefix}:snapmem:{tenant}:{closing}"


def snapshot_tag(prefix: str, tenant: object, client: object) -> str:
    """Set of a client's closing ids with a cached snapshot, for invalidation by client."""
    return f"{prefix}:snaptag:{tenant}:{client}"


def snapshot_lock(prefix: str, tenant: object, closing: object) -> str:
    """Short lease held by the one process that reloads a snapshot from Postgres."""
    return f"{prefix}:snaplock:{tenant}:{closing}"


def snapshot_pattern(prefix: str, tenant: object, kind: str = "snap*") -> str:
    """SCAN pattern of a tenant's cache keys of one kind (admin stats and "all" only)."""
    return f"{prefix}:{kind}:{tenant}:*"


def cache_events(prefix: str) -> str:
    """Pub/sub channel on which every publish and invalidation is announced to near caches."""
    return f"{prefix}:cache-events"
