"""Nothing accepted is lost: a worker killed mid-run, and an upload made while Redis was down."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr

from app.adapters.postgres.tables import (
    iteration_results,
    iterations,
    movement_batches,
    snapshots,
)
from app.api.state import app_state
from app.main import create_app
from app.services.iterations import sweeper
from app.settings import Settings
from tests.conftest import KeyMaker, bearer
from tests.ops_helpers import app_client, unique_prefix, variant


async def _open_closing(client: AsyncClient, key: str) -> str:
    created = await client.post("/api/v1/clients", json={"name": "Recovery"}, headers=bearer(key))
    closing = await client.post(
        f"/api/v1/clients/{created.json()['id']}/closings",
        json={"period": "2026-10"},
        headers=bearer(key),
    )
    return str(closing.json()["id"])


def _write_ledger(path: Path, vouchers: int) -> int:
    """Balanced two-line vouchers; returns the number of movements."""
    rng = random.Random(3)
    with path.open("w") as out:
        out.write("fecha,comprobante,cuenta,glosa,debe,haber\n")
        for number in range(vouchers):
            cents = rng.randrange(100, 10**8)
            amount = f"{cents // 100}.{cents % 100:02d}"
            day = 1 + number % 28
            out.write(f"2026-10-{day:02d},V{number},1101,pago {number},{amount},0\n")
            out.write(f"2026-10-{day:02d},V{number},2101,pago {number},0,{amount}\n")
    return 2 * vouchers


async def _iteration(client: AsyncClient, key: str, location: str) -> dict:
    return (await client.get(location, headers=bearer(key))).json()


async def test_upload_accepted_while_redis_is_down_is_processed_once_redis_returns(
    app: FastAPI,
    client: AsyncClient,
    settings: Settings,
    make_key: KeyMaker,
    run_worker: Callable[[], Awaitable[None]],
) -> None:
    key = await make_key("analyst")
    closing_id = await _open_closing(client, key)
    redis_down = create_app(
        settings.model_copy(update={"redis_url": SecretStr("redis://127.0.0.1:1/0")})
    )
    async with (
        LifespanManager(redis_down),
        AsyncClient(transport=ASGITransport(app=redis_down), base_url="http://test") as degraded,
    ):
        accepted = await degraded.post(
            f"/api/v1/closings/{closing_id}/ledger",
            files={
                "file": ("l.csv", b"fecha,comprobante,cuenta,debe,haber\n2026-10-01,V1,1101,5,5\n")
            },
            headers=bearer(key),
        )
    assert accepted.status_code == 202, accepted.text

    await run_worker()  # Redis is back, but no job was ever queued for this iteration
    location = accepted.headers["Location"]
    assert (await _iteration(client, key, location))["status"] == "queued"

    assert await sweeper.sweep(app_state(app).resources, queued_grace_seconds=0) >= 1
    await run_worker()
    assert (await _iteration(client, key, location))["status"] == "succeeded"


def _worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    assert settings.database_url is not None and settings.redis_url is not None
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "REDIS_URL": settings.redis_url.get_secret_value(),
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "ITERATION_LEASE_SECONDS": "2",
        "LOG_LEVEL": "INFO",
    }
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"], env=env, stdout=sink, stderr=sink
        )


async def _wait_for(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_worker_killed_mid_run_the_iteration_completes_exactly_once(
    settings: Settings, make_key: KeyMaker, tmp_path: Path
) -> None:
    # Its own key prefix: the killed worker's arq job stays "in progress" in Redis until arq's
    # job timeout, and would hold any later burst worker of the suite's queue that long.
    own = variant(settings, redis_key_prefix=unique_prefix(settings, "sigkill"))
    async with app_client(own) as (app, client):
        await _killed_mid_run(app, client, own, make_key, tmp_path)


async def _killed_mid_run(
    app: FastAPI, client: AsyncClient, settings: Settings, make_key: KeyMaker, tmp_path: Path
) -> None:
    key = await make_key("analyst")
    closing_id = await _open_closing(client, key)
    ledger = tmp_path / "ledger.csv"
    movements = _write_ledger(ledger, vouchers=300_000)
    with ledger.open("rb") as fh:
        accepted = await client.post(
            f"/api/v1/closings/{closing_id}/ledger",
            files={"file": ("l.csv", fh)},
            headers=bearer(key),
        )
    assert accepted.status_code == 202, accepted.text
    location = accepted.headers["Location"]
    log = tmp_path / "workers.log"

    first = _worker(settings, log)
    try:

        async def mid_run() -> bool:
            state = await _iteration(client, key, location)
            return state["status"] == "running" and state["movements_processed"] > 0

        await _wait_for(mid_run, 60, "the first worker to be mid-run")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed = await _iteration(client, key, location)
        assert killed["status"] == "running", killed

        second = _worker(settings, log)
        try:

            async def finished() -> bool:
                return (await _iteration(client, key, location))["status"] != "running"

            await _wait_for(finished, 90, "a second worker to take the iteration over")
        finally:
            second.terminate()
            second.wait(30)
    finally:
        if first.poll() is None:
            first.kill()

    done = await _iteration(client, key, location)
    assert done["status"] == "succeeded", (done, log.read_text()[-3000:])
    assert done["movements_processed"] == movements
    engine = app_state(app).resources.engine
    async with engine.connect() as conn:
        published = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(snapshots)
            .where(snapshots.c.closing_id == closing_id)
        )
        results = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(iteration_results)
            .where(iteration_results.c.iteration_id == done["id"])
        )
        attempts, ledger_id = (
            await conn.execute(
                sa.select(iterations.c.attempts, iterations.c.ledger_id).where(
                    iterations.c.id == done["id"]
                )
            )
        ).one()
        stored_rows = await conn.scalar(
            sa.select(sa.func.sum(movement_batches.c.row_count)).where(
                movement_batches.c.ledger_id == ledger_id
            )
        )
    assert (published, results) == (1, 1)
    assert attempts == 2  # the killed attempt, then the one that finished
    assert stored_rows == movements  # the partial parse of the killed attempt was replaced
    assert done["summary"]["movements_total"] == movements
