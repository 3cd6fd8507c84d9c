"""Admin view of the snapshot cache: statistics, and invalidation by closing, client or tenant."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from app.adapters.redis import REDIS_FAILURES
from app.adapters.redis.snapshot_cache import KINDS, Event
from app.metrics import CACHE_INVALIDATIONS, totals
from app.services.audit.record import Actor, Change, record
from app.services.snapshot_cache.local import notify_local
from app.services.snapshot_cache.repository import SnapshotRepository
from app.services.tenancy.clients import get_client
from app.services.tenancy.closings import check_closing


def _rates(hits: float, misses: float, bypasses: float) -> dict[str, Any]:
    lookups = hits + misses + bypasses
    return {
        "hits": int(hits),
        "misses": int(misses),
        "bypasses": int(bypasses),
        "hit_rate": round(hits / lookups, 4) if lookups else None,
    }


async def stats(repository: SnapshotRepository, tenant: uuid.UUID) -> dict[str, Any]:
    """Lookup counters of the API (all tenants, as on /metrics) and the tenant's keys."""
    lookups: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (kind, outcome), value in totals("ledger_cache_lookups").items():
        lookups[kind][outcome] += value
    errors = {labels[0]: value for labels, value in totals("ledger_cache_errors").items()}
    invalidations = {
        labels[0]: int(v) for labels, v in totals("ledger_cache_invalidations").items()
    }
    try:
        keys: dict[str, dict[str, Any]] | None = await repository.cache.key_stats(tenant)
    except REDIS_FAILURES:
        keys = None
    by_kind: dict[str, Any] = {}
    for kind in KINDS:
        counts = lookups[kind]
        by_kind[kind] = {
            **_rates(counts["hit"], counts["miss"], counts["bypass"]),
            "errors": int(errors.get(kind, 0)),
            **({k: v for k, v in keys[kind].items() if k != "complete"} if keys else {}),
        }
    total_keys = sum(keys[k]["keys"] for k in KINDS) if keys else None
    ttl_weight = (
        sum((keys[k]["average_ttl_seconds"] or 0) * keys[k]["keys"] for k in KINDS) if keys else 0
    )
    return {
        **_rates(*(sum(lookups[k][o] for k in KINDS) for o in ("hit", "miss", "bypass"))),
        "invalidations": sum(invalidations.values()),
        "invalidations_by_scope": invalidations,
        "errors": int(sum(errors.values())),
        "keys": total_keys,
        "memory_bytes": sum(keys[k]["memory_bytes"] for k in KINDS) if keys else None,
        "average_ttl_seconds": round(ttl_weight / total_keys, 1) if total_keys else None,
        "keys_complete": all(keys[k]["complete"] for k in KINDS) if keys else None,
        "by_kind": by_kind,
        "redis": "ok" if keys is not None else "unavailable",
        "circuit": {"state": repository.breaker.state, "opened": repository.breaker.opened},
        "near_cache": {
            "entries": len(repository.near),
            "bytes": repository.near.size,
            "subscribed": repository.subscribed,
        },
        "scope": {"counters": "this API process, all tenants", "keys": "your tenant"},
    }


async def invalidate(
    repository: SnapshotRepository,
    actor: Actor,
    *,
    closing: uuid.UUID | None = None,
    client: uuid.UUID | None = None,
) -> dict[str, Any]:
    """Drop the actor's tenant's cached snapshots of one closing, one client, or all of them;
    audited once done.

    Ownership is checked in Postgres first: another tenant's id is a 404, as everywhere.
    Redis failures propagate (the caller answers 503: the invalidation did not happen).
    """
    tenant = actor.tenant_id
    cache = repository.cache
    if closing is not None or client is not None:
        async with repository.reader.connect() as conn:
            if closing is not None:
                await check_closing(conn, tenant, closing)
            else:
                assert client is not None
                await get_client(conn, tenant, client)
    if closing is not None:
        scope, target = "closing", str(closing)
        dropped = await cache.invalidate(tenant, closings=[closing])
    elif client is not None:
        scope, target = "client", str(client)
        dropped = await cache.invalidate(tenant, client=client)
    else:
        scope, target = "tenant", ""
        dropped = await cache.invalidate_tenant(tenant)
    notify_local(Event(scope, str(tenant), target))
    CACHE_INVALIDATIONS.labels("all" if scope == "tenant" else scope).inc()
    answer = {
        "scope": "all" if scope == "tenant" else scope,
        "target": target or None,
        "snapshots_dropped": dropped,
    }
    invalidated = Change(
        "cache.invalidated", "cache", target or "all", answer, client_id=client, closing_id=closing
    )
    async with repository.engine.begin() as conn:
        await record(conn, actor, [invalidated])
    return answer
