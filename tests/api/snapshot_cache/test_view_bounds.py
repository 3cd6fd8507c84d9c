"""Cached views are bounded per closing: ever new filters and pages are answered, but past
MAX_CACHED_VIEWS live views they are computed, not cached, so no caller can fill Redis."""

from __future__ import annotations

import asyncio

from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient

from app.adapters.redis import keys
from app.adapters.redis.snapshot_cache import MAX_CACHED_VIEWS
from app.api.state import app_state
from app.main import create_app
from app.settings import Settings
from tests.conftest import KeyMaker, bearer
from tests.helpers import API
from tests.integration.snapshot_cache.support import Worker, ledger, owner, published


async def test_views_past_the_bound_are_served_uncached(
    settings: Settings, make_key: KeyMaker, run_worker: Worker
) -> None:
    application = create_app(settings.model_copy(update={"cache_view_ttl_seconds": 2}))
    async with (
        LifespanManager(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://t") as client,
    ):
        key = await make_key("analyst")
        closing = await published(client, key, run_worker, ledger(20))
        tenant, closing_id = await owner(application, closing)
        redis = app_state(application).resources.redis
        prefix = settings.redis_key_prefix
        whole = await client.get(f"{API}/closings/{closing_id}/incidences", headers=bearer(key))
        incidences = whole.json()["incidences"]

        async def view_keys() -> list[bytes]:
            pattern = f"{keys.snapshot_views(prefix, tenant, closing_id)}:*"
            return [k async for k in redis.scan_iter(match=pattern)]

        for offset in range(MAX_CACHED_VIEWS + 8):
            page = await client.get(
                f"{API}/closings/{closing_id}/incidences",
                params={"offset": offset, "limit": 1},
                headers=bearer(key),
            )
            assert page.status_code == 200
            assert page.json()["incidences"] == incidences[offset : offset + 1]
        assert len(await view_keys()) == MAX_CACHED_VIEWS
        members = keys.snapshot_members(prefix, tenant, closing_id)
        assert await redis.scard(members) == MAX_CACHED_VIEWS
        # Once the cached views expire, their places are taken by new ones.
        await asyncio.sleep(2.5)
        app_state(application).snapshots.near.clear()
        await client.get(
            f"{API}/closings/{closing_id}/incidences",
            params={"severity": "error"},
            headers=bearer(key),
        )
        assert len(await view_keys()) == 1
        assert await redis.scard(members) == 1
