"""Redis runs with `maxmemory-policy volatile-lru` (compose.yaml): only keys with a TTL can be
evicted. So every cache key the service writes has a TTL, and no queued iteration job has one:
memory pressure drops cache entries, never the queue."""

from __future__ import annotations

import uuid

from arq.constants import job_key_prefix
from fastapi import FastAPI
from httpx import AsyncClient

from app.adapters.queue import iteration_job_id
from app.api.state import app_state
from app.settings import Settings
from tests.conftest import KeyMaker, bearer
from tests.helpers import API, create_closing, upload
from tests.integration.snapshot_cache.support import Worker, ledger, published

# State, not cache: a few small keys that must outlive any memory pressure.
NOT_CACHE = ("workers", "stats:jobs", "queue")


async def test_cache_keys_expire_and_queued_jobs_do_not(
    app: FastAPI,
    client: AsyncClient,
    make_key: KeyMaker,
    run_worker: Worker,
    settings: Settings,
) -> None:
    key = await make_key("admin")
    closing = await published(client, key, run_worker, ledger(20))
    path = f"{API}/closings/{closing.id}/incidences"
    # Every kind of cache write: snapshot, views, invalidation, a reload under its lease, and
    # rate-limit windows (this test's requests are counted).
    assert (await client.get(path, headers=bearer(key))).status_code == 200
    assert (await client.get(path, params={"limit": 2}, headers=bearer(key))).status_code == 200
    invalidate = f"{API}/admin/cache/invalidate"
    await client.post(invalidate, json={"closing_id": closing.id}, headers=bearer(key))
    app_state(app).snapshots.near.clear()
    assert (await client.get(path, params={"limit": 3}, headers=bearer(key))).status_code == 200

    redis = app_state(app).resources.redis
    prefix = settings.redis_key_prefix
    without_ttl = [
        name
        async for name in redis.scan_iter(match=f"{prefix}:*", count=500)
        if await redis.ttl(name) == -1
    ]
    assert {name.decode().removeprefix(f"{prefix}:") for name in without_ttl} <= set(NOT_CACHE)

    # A queued iteration's job is kept until a worker has run it.
    queued = await create_closing(client, key)
    assert (await upload(client, key, queued.id, ledger(4).encode())).status_code == 202
    iteration = (
        await client.get(f"{API}/closings/{queued.id}/iterations/1", headers=bearer(key))
    ).json()
    job = job_key_prefix + iteration_job_id(prefix, uuid.UUID(iteration["id"]), 0)
    assert await redis.exists(job) == 1 and await redis.ttl(job) == -1
    await run_worker()
    assert await redis.exists(job) == 0
