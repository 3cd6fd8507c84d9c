"""GET /incidences through the snapshot cache (X-Cache, ETag, TTLs per kind), invalidation on
reference-data changes (confirming what is still current), the admin cache endpoints, and the
API-key cache's revocation delay."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.adapters.redis import keys
from app.adapters.redis.snapshot_cache import SnapshotCache
from app.api.state import app_state
from app.domain.snapshot import SnapshotEntry
from app.main import create_app
from app.services.tenancy import api_keys
from app.settings import Settings
from tests.conftest import KeyMaker, bearer
from tests.helpers import API, Closing, assert_problem
from tests.integration.snapshot_cache.support import Worker, ledger, owner, published


def _path(closing: object) -> str:
    return f"{API}/closings/{closing}/incidences"


async def _x_cache(client: AsyncClient, key: str, closing: object, **params: object) -> str:
    response = await client.get(_path(closing), params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.headers["X-Cache"]


async def test_x_cache_etag_and_ttl_per_kind(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker, run_worker: Worker, settings: Settings
) -> None:
    key = await make_key("admin")
    tenant, closing = await owner(app, await published(client, key, run_worker, ledger(20)))
    first = await client.get(_path(closing), headers=bearer(key))
    etag = first.headers["ETag"]
    assert (first.headers["X-Cache"], first.headers["Cache-Control"]) == (
        "hit",
        "private, no-cache",
    )
    # httpx accepts gzip: the compressed representation, with its own ETag.
    assert etag == f'"{first.json()["content_hash"]}-gzip"'
    assert (
        first.headers["Content-Encoding"] == "gzip" and first.headers["Vary"] == "Accept-Encoding"
    )
    identity = await client.get(
        _path(closing), headers={**bearer(key), "Accept-Encoding": "identity"}
    )
    assert identity.headers["ETag"] == f'"{first.json()["content_hash"]}"'
    assert "Content-Encoding" not in identity.headers and identity.content == first.content
    not_modified = await client.get(_path(closing), headers={**bearer(key), "If-None-Match": etag})
    assert (not_modified.status_code, not_modified.headers["X-Cache"]) == (304, "hit")
    assert not_modified.content == b""

    invalidated = await client.post(
        f"{API}/admin/cache/invalidate", json={"closing_id": str(closing)}, headers=bearer(key)
    )
    assert invalidated.json() == {
        "scope": "closing",
        "target": str(closing),
        "snapshots_dropped": 1,
    }
    assert await _x_cache(client, key, closing) == "miss"  # reloaded from Postgres…
    assert await _x_cache(client, key, closing) == "hit"  # …and written back

    view = await client.get(_path(closing), params={"limit": 3}, headers=bearer(key))
    assert view.headers["ETag"] not in (etag, None) and len(view.json()["incidences"]) == 3
    assert view.headers["X-Cache"] == "hit"  # computed from the cached snapshot, then stored
    redis = app_state(app).resources.redis
    prefix = settings.redis_key_prefix
    views = [
        k async for k in redis.scan_iter(match=f"{keys.snapshot_views(prefix, tenant, closing)}:*")
    ]
    assert len(views) == 1
    view_ttl = await redis.ttl(views[0])
    snapshot_ttl = await redis.ttl(keys.snapshot(prefix, tenant, closing))
    assert settings.cache_view_ttl_seconds - 5 <= view_ttl <= settings.cache_view_ttl_seconds
    assert (
        settings.cache_snapshot_ttl_seconds - 5
        <= snapshot_ttl
        <= settings.cache_snapshot_ttl_seconds
    )


async def test_reference_data_change_confirms_or_drops_the_cached_snapshots_of_the_client(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker, run_worker: Worker, settings: Settings
) -> None:
    """A reference-data change invalidates the client's cached snapshots. One that is still
    the revision Postgres serves (every one, until the re-runs publish) is confirmed and stays
    a hit; one that is not (a publish whose cache write was lost) is dropped and reloaded."""
    key = await make_key("analyst")
    first = await published(client, key, run_worker, ledger(4))
    created = await client.post(
        f"{API}/clients/{first.client_id}/closings", json={"period": "2026-11"}, headers=bearer(key)
    )
    second = Closing(first.client_id, created.json()["id"])
    await published(client, key, run_worker, ledger(4, period="2026-11"), closing=second)
    other = await published(client, key, run_worker, ledger(4))  # another client
    for closing in (first, second, other):
        assert await _x_cache(client, key, closing.id) == "hit"
    before = {c.id: await client.get(_path(c.id), headers=bearer(key)) for c in (first, second)}
    # Redis is left an older revision of `second` than Postgres serves.
    tenant, _ = await owner(app, second)
    redis = app_state(app).resources.redis
    entry = keys.snapshot(settings.redis_key_prefix, tenant, second.id)
    revision = int(await redis.hget(entry, "v"))
    await redis.delete(entry)
    stale = SnapshotEntry(revision - 1, "stale", first.client_id, b'{"stale": true}')
    cache = SnapshotCache.for_settings(redis, settings)
    assert await cache.store_snapshot(tenant, second.id, stale)

    put = await client.put(
        f"{API}/clients/{first.client_id}/accounts",
        json=[{"code": "700000", "name": "Now in the chart"}],
        headers=bearer(key),
    )
    assert put.status_code == 200, put.text
    assert len(put.json()["iterations"]) == 2  # both closings use 700000: both re-run
    after = {c.id: await client.get(_path(c.id), headers=bearer(key)) for c in (first, second)}
    assert [after[c.id].headers["X-Cache"] for c in (first, second)] == ["hit", "miss"]
    for closing in (first, second):  # the same snapshot as before, never the stale entry
        assert after[closing.id].content == before[closing.id].content
        assert after[closing.id].headers["ETag"] == before[closing.id].headers["ETag"]
    assert await _x_cache(client, key, second.id) == "hit"  # written back
    assert await _x_cache(client, key, other.id) == "hit"

    await run_worker()  # the re-runs publish new snapshots, written to Redis
    for closing in (first, second):
        response = await client.get(_path(closing.id), headers=bearer(key))
        assert response.headers["X-Cache"] == "hit"
        assert response.json()["iteration"] == before[closing.id].json()["iteration"] + 1


async def test_admin_cache_endpoints(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    tenant_name = f"cache-{uuid.uuid4().hex[:6]}"
    admin = await make_key("admin", tenant=tenant_name)
    analyst = await make_key("analyst", tenant=tenant_name)
    stranger = await make_key("admin")
    closings = [await published(client, admin, run_worker, ledger(4)) for _ in range(2)]
    foreign = await published(client, stranger, run_worker, ledger(4))
    for role_too_low in (
        client.get(f"{API}/admin/cache/stats", headers=bearer(analyst)),
        client.post(f"{API}/admin/cache/invalidate", json={"all": True}, headers=bearer(analyst)),
    ):
        assert_problem(await role_too_low, 403)
    for bad in ({}, {"all": False}, {"all": True, "closing_id": closings[0].id}, {"x": 1}):
        response = await client.post(
            f"{API}/admin/cache/invalidate", json=bad, headers=bearer(admin)
        )
        assert_problem(response, 422)
    for not_yours in ({"closing_id": foreign.id}, {"client_id": foreign.client_id}):
        response = await client.post(
            f"{API}/admin/cache/invalidate", json=not_yours, headers=bearer(admin)
        )
        assert_problem(response, 404)

    before = (await client.get(f"{API}/admin/cache/stats", headers=bearer(admin))).json()
    outcomes = [await _x_cache(client, admin, c.id) for c in closings]  # hits
    dropped = await client.post(
        f"{API}/admin/cache/invalidate",
        json={"client_id": closings[0].client_id},
        headers=bearer(admin),
    )
    assert dropped.json()["snapshots_dropped"] == 1
    outcomes += [await _x_cache(client, admin, c.id) for c in closings]  # miss, hit
    outcomes.append(await _x_cache(client, admin, closings[1].id, severity="error"))
    stats = (await client.get(f"{API}/admin/cache/stats", headers=bearer(admin))).json()
    assert outcomes == ["hit", "hit", "miss", "hit", "hit"]
    snapshot, view = stats["by_kind"]["snapshot"], stats["by_kind"]["view"]
    before_snapshot = before["by_kind"]["snapshot"]
    # Lookups: 4 whole snapshots (3 hits, 1 miss); the view missed, and read the whole one (hit).
    assert snapshot["hits"] - before_snapshot["hits"] == 4
    assert snapshot["misses"] - before_snapshot["misses"] == 1
    assert view["misses"] - before["by_kind"]["view"]["misses"] == 1
    assert stats["invalidations"] - before["invalidations"] == 1
    assert (snapshot["keys"], view["keys"], stats["keys"]) == (2, 1, 3)  # this tenant's only
    assert stats["memory_bytes"] == snapshot["memory_bytes"] + view["memory_bytes"] > 0
    assert 0 < view["average_ttl_seconds"] <= stats["average_ttl_seconds"]
    lookups = stats["hits"] + stats["misses"] + stats["bypasses"]
    assert stats["hit_rate"] == round(stats["hits"] / lookups, 4)
    assert stats["circuit"]["state"] == "closed" and stats["redis"] == "ok"

    metrics = (await client.get("/metrics")).text
    hits = re.search(r'ledger_cache_lookups_total\{kind="snapshot",outcome="hit"\} (\S+)', metrics)
    assert hits is not None and int(float(hits.group(1))) == snapshot["hits"]

    everything = await client.post(
        f"{API}/admin/cache/invalidate", json={"all": True}, headers=bearer(admin)
    )
    assert everything.json() == {"scope": "all", "target": None, "snapshots_dropped": 2}
    assert [await _x_cache(client, admin, c.id) for c in closings] == ["miss", "miss"]
    assert await _x_cache(client, stranger, foreign.id) == "hit"  # other tenants untouched


async def test_revoked_key_stops_working_within_the_auth_cache_ttl(
    settings: Settings, make_key: KeyMaker
) -> None:
    ttl = 2.0
    application = create_app(settings.model_copy(update={"auth_cache_ttl_seconds": ttl}))
    async with (
        LifespanManager(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://test") as client,
    ):
        key = await make_key("viewer")
        # The first request puts the key in the auth cache, between these two instants.
        before = time.monotonic()
        assert (await client.get(f"{API}/clients", headers=bearer(key))).status_code == 200
        after = time.monotonic()
        async with app_state(application).resources.engine.begin() as conn:
            listed = [k for k in await api_keys.list_keys(conn) if not k.revoked]
            key_id = next(k.id for k in listed if key.startswith(k.key_prefix))
            assert await api_keys.revoke_key(conn, key_id)
        still = await client.get(f"{API}/clients", headers=bearer(key))
        if time.monotonic() - before < ttl:  # a loaded machine may take longer than the TTL
            assert still.status_code == 200  # within the TTL the cached answer stands
        await asyncio.sleep(max(0.0, after + ttl + 0.05 - time.monotonic()))
        assert_problem(await client.get(f"{API}/clients", headers=bearer(key)), 401)
