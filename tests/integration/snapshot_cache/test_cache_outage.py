"""Redis going away in the middle of a read loop: every read still answers from Postgres, errors
are counted, the circuit opens (no Redis timeout paid per request) and closes by itself."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr

from app.api.state import app_state
from app.domain.snapshot import SnapshotQuery
from app.main import create_app
from app.metrics import CACHE_ERRORS
from app.services.snapshot_cache.repository import SnapshotRepository
from app.settings import Settings
from tests.conftest import KeyMaker, Servers, bearer
from tests.integration.snapshot_cache.support import (
    RedisProxy,
    Worker,
    ledger,
    owner,
    published,
    redis_proxy,
)

OPEN_SECONDS = 0.4


@asynccontextmanager
async def behind_proxy(settings: Settings, proxy: RedisProxy) -> AsyncIterator[FastAPI]:
    """An API process whose Redis is reached through the proxy."""
    application = create_app(
        settings.model_copy(
            update={
                "redis_url": SecretStr(proxy.url),
                "cache_breaker_open_seconds": OPEN_SECONDS,
                "cache_near_max_age_seconds": 0.05,
                "rate_limit_read": "100000/60",
            }
        )
    )
    async with LifespanManager(application):
        yield application


async def _until(condition: object, seconds: float) -> bool:
    for _ in range(int(seconds / 0.01)):
        if condition():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.01)
    return False


def _errors() -> float:
    return sum(
        s.value for f in CACHE_ERRORS.collect() for s in f.samples if s.name.endswith("_total")
    )


async def test_reads_survive_redis_going_down_and_coming_back(
    app: FastAPI,
    client: AsyncClient,
    make_key: KeyMaker,
    run_worker: Worker,
    settings: Settings,
    servers: Servers,
) -> None:
    key = await make_key("analyst")
    closing = await published(client, key, run_worker, ledger(40))
    _, closing_id = await owner(app, closing)
    path = f"/api/v1/closings/{closing_id}/incidences"
    async with redis_proxy(servers.redis_url) as proxy, behind_proxy(settings, proxy) as api:
        repository: SnapshotRepository = app_state(api).snapshots
        assert await _until(lambda: repository.subscribed, 5)
        errors_before = _errors()
        seen: list[tuple[str, str, str]] = []  # (phase, X-Cache, breaker state)
        async with AsyncClient(transport=ASGITransport(app=api), base_url="http://t") as http:
            etag = None
            for i in range(240):
                phase = "before" if i < 40 else "outage" if i < 140 else "after"
                if i == 40:
                    proxy.set_mode("down")
                if i == 140:
                    proxy.set_mode("up")
                response = await http.get(path, headers=bearer(key))
                assert response.status_code == 200, (i, response.text)  # not one failed read
                etag = etag or response.headers["ETag"]
                assert response.headers["ETag"] == etag
                seen.append((phase, response.headers["X-Cache"], repository.breaker.state))
                await asyncio.sleep(0.01)
        by_phase = Counter((phase, x_cache) for phase, x_cache, _ in seen)
        assert by_phase["before", "hit"] == 40
        # Straight to Postgres, and said so (the first read may still beat the listener to the
        # news, and be served from the near cache: the data is correct either way).
        assert by_phase["outage", "bypass"] >= 99
        assert {state for phase, _, state in seen if phase == "outage"} >= {"open"}
        assert repository.breaker.opened >= 1
        assert _errors() - errors_before >= 3  # counted (the breaker opened after 3)
        after = [(x_cache, state) for phase, x_cache, state in seen if phase == "after"]
        # Recovered by itself: once a probe passed, the circuit is closed and reads hit again.
        assert after[-20:] == [("hit", "closed")] * 20
        # The listener reconnects on its own backoff (at most 2 s apart), maybe after the loop.
        assert await _until(lambda: repository.subscribed, 5)


async def test_an_open_circuit_stops_paying_the_redis_timeout(
    app: FastAPI,
    client: AsyncClient,
    make_key: KeyMaker,
    run_worker: Worker,
    settings: Settings,
    servers: Servers,
) -> None:
    analyst = await make_key("analyst")
    tenant, closing = await owner(app, await published(client, analyst, run_worker, ledger(40)))
    async with redis_proxy(servers.redis_url) as proxy, behind_proxy(settings, proxy) as api:
        repository: SnapshotRepository = app_state(api).snapshots
        timeout = app_state(api).resources.settings.cache_redis_timeout_seconds
        assert (await repository.get(tenant, closing, SnapshotQuery())).outcome == "hit"
        proxy.set_mode("hang")  # connections accepted, never answered: each call times out
        await asyncio.sleep(0.1)  # the listener saw its connection drop: near entries go
        slow = 0
        started = time.monotonic()
        reads = 0
        while time.monotonic() - started < 4 * OPEN_SECONDS:
            began = time.monotonic()
            served = await repository.get(tenant, closing, SnapshotQuery())
            assert served.outcome == "bypass"
            slow += time.monotonic() - began >= timeout * 0.8
            reads += 1
        # Three failures open it, then one probe per OPEN_SECONDS pays the timeout: not all.
        probes = 4 * OPEN_SECONDS / OPEN_SECONDS + 1
        assert slow <= 3 + probes, (slow, reads)
        assert reads >= 5 * slow
        proxy.set_mode("up")
        assert await _until(lambda: repository.subscribed, 5)
        await asyncio.sleep(OPEN_SECONDS)
        outcomes = [(await repository.get(tenant, closing, SnapshotQuery())).outcome for _ in "abc"]
        assert outcomes[-1] == "hit" and repository.breaker.state == "closed"
