"""Admin operations on the snapshot cache (SPEC §6): statistics and invalidation.

Tenant-scoped like everything else: `closing_id` and `client_id` must be the admin's tenant's
(else 404), and `all` means every cached snapshot of the admin's tenant. Operators who need to
drop a whole deployment's cache use Redis itself (or change REDIS_KEY_PREFIX).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from app.adapters.redis import REDIS_FAILURES
from app.api.deps import Admin, AdminActor, SnapshotsDep
from app.api.problems import problem_responses
from app.api.schemas.cache import InvalidateIn, InvalidateOut
from app.services.snapshot_cache import admin as cache_admin

router = APIRouter(prefix="/admin/cache", tags=["admin"], responses=problem_responses(403))


@router.get(
    "/stats",
    summary="Snapshot cache statistics",
    description="Hits, misses, bypasses, hit rate, invalidations and errors of this API "
    "process (the counters of /metrics), and the keys, memory and average TTL of your "
    "tenant's entries in Redis, in total and by kind (`snapshot`, `view`).",
)
async def get_cache_stats(principal: Admin, repository: SnapshotsDep) -> dict[str, Any]:
    return await cache_admin.stats(repository, principal.tenant_id)


@router.post(
    "/invalidate",
    response_model=InvalidateOut,
    summary="Drop cached snapshots of a closing, a client, or your whole tenant",
    responses=problem_responses(
        400,
        (404, "No such closing or client"),
        (503, "Redis is unavailable: nothing was invalidated"),
    ),
)
async def invalidate_cache(
    body: InvalidateIn, actor: AdminActor, repository: SnapshotsDep
) -> dict[str, Any]:
    try:
        return await cache_admin.invalidate(
            repository, actor, closing=body.closing_id, client=body.client_id
        )
    except REDIS_FAILURES:
        raise HTTPException(503, "Redis is unavailable: the cache was not invalidated") from None
