"""`ledger-incidences cache warm` pre-loads the snapshots of open closings (and only those)."""

from __future__ import annotations

import asyncio
import os
import sys

from fastapi import FastAPI
from httpx import AsyncClient

from app.adapters.redis import keys
from app.api.state import app_state
from app.settings import Settings
from tests.conftest import KeyMaker, bearer
from tests.integration.snapshot_cache.support import Worker, ledger, owner, published


async def test_cache_warm_loads_open_closings(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker, run_worker: Worker, settings: Settings
) -> None:
    key = await make_key("admin")
    open_one, closed_one = [await published(client, key, run_worker, ledger(6)) for _ in "ab"]
    closed = await client.patch(
        f"/api/v1/closings/{closed_one.id}",
        json={"status": "closed", "force": True},
        headers=bearer(key),
    )
    assert closed.status_code == 200, closed.text
    dropped = await client.post(
        "/api/v1/admin/cache/invalidate", json={"all": True}, headers=bearer(key)
    )
    assert dropped.json()["snapshots_dropped"] == 2
    redis = app_state(app).resources.redis
    entries = [
        keys.snapshot(settings.redis_key_prefix, *await owner(app, c))
        for c in (open_one, closed_one)
    ]

    assert settings.database_url is not None and settings.redis_url is not None
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "REDIS_URL": settings.redis_url.get_secret_value(),
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "cache",
        "warm",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert "cache warm:" in out.decode().splitlines()[-1]
    assert await redis.hexists(entries[0], "d")
    assert not await redis.hexists(entries[1], "d")  # closed: left alone
    response = await client.get(f"/api/v1/closings/{open_one.id}/incidences", headers=bearer(key))
    assert response.headers["X-Cache"] == "hit"
