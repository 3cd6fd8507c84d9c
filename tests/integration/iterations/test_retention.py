"""Scheduled upkeep: keep ITERATION_RETENTION full incidence sets per closing (never the served
snapshot's), and purge leftover arq job results of this deployment only."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from httpx import AsyncClient

from app.adapters.postgres.tables import incidence_lines, iteration_results, iterations, snapshots
from app.api.state import app_state
from app.services.iterations import retention
from app.services.tenancy import api_keys
from app.settings import Settings
from tests.conftest import Databases, bearer, drain_queue
from tests.helpers import create_closing, upload
from tests.ops_helpers import app_client, migrated_database, unique_prefix, variant
from workers import tasks

LEDGER = (
    b"fecha,comprobante,cuenta,tipo_doc,debe,haber\n"
    b"2026-10-01,V1,1101,FAC,100.00,0\n"
    b"2026-10-01,V1,9999,XX,0,90.00\n"
)


@dataclass
class Deployment:
    """An API and a burst worker over their own database (retention is database-wide)."""

    app: FastAPI
    client: AsyncClient
    settings: Settings
    key: str

    async def run_worker(self) -> None:
        await drain_queue(self.settings)


@pytest.fixture
async def deployment(settings: Settings, databases: Databases) -> AsyncIterator[Deployment]:
    own = variant(
        settings,
        database_url=await migrated_database(databases, "retention"),
        redis_key_prefix=unique_prefix(settings, "retention"),
    )
    async with app_client(own) as (application, http):
        async with app_state(application).resources.engine.begin() as conn:
            key = await api_keys.create_key(conn, tenant="retention", role="analyst", name="r")
        yield Deployment(application, http, own, key)


async def closing_with_iterations(
    client: AsyncClient, key: str, runs: int, run_worker: Callable[[], Awaitable[None]]
) -> str:
    """A closing whose ledger was processed `runs` times (an upload, then reprocessings)."""
    closing = await create_closing(client, key, name=f"Retention {secrets.token_hex(3)}")
    assert (await upload(client, key, closing.id, LEDGER)).status_code == 202
    await run_worker()
    for _ in range(runs - 1):
        again = await client.post(
            f"/api/v1/closings/{closing.id}/reprocess", json={}, headers=bearer(key)
        )
        assert again.status_code == 202, again.text
        await run_worker()
    return closing.id


async def stored(app: FastAPI, closing_id: str) -> dict[int, tuple[bool, int]]:
    """Per iteration number: (has a result document, how many drill-down line rows)."""
    async with app_state(app).resources.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(
                iterations.c.number,
                sa.exists().where(iteration_results.c.iteration_id == iterations.c.id),
                sa.select(sa.func.count())
                .select_from(incidence_lines)
                .where(incidence_lines.c.iteration_id == iterations.c.id)
                .scalar_subquery(),
            ).where(iterations.c.closing_id == closing_id, iterations.c.status == "succeeded")
        )
        return {number: (has_result, lines) for number, has_result, lines in rows}


async def snapshot_number(app: FastAPI, closing_id: str) -> int:
    async with app_state(app).resources.engine.connect() as conn:
        number = await conn.scalar(
            sa.select(iterations.c.number)
            .join(snapshots, snapshots.c.iteration_id == iterations.c.id)
            .where(snapshots.c.closing_id == closing_id)
        )
    assert isinstance(number, int)
    return number


async def test_keeps_the_newest_sets_per_closing_and_always_the_snapshot(
    deployment: Deployment,
) -> None:
    app, client, key = deployment.app, deployment.client, deployment.key
    run_worker = deployment.run_worker
    busy = await closing_with_iterations(client, key, 4, run_worker)
    quiet = await closing_with_iterations(client, key, 1, run_worker)
    before = await stored(app, busy)
    assert sorted(before) == [1, 2, 3, 4]
    lines_per_set = before[4][1]
    assert lines_per_set > 0 and all(v == (True, lines_per_set) for v in before.values())
    served = await client.get(f"/api/v1/closings/{busy}/incidences", headers=bearer(key))
    assert served.status_code == 200

    # The cron job, with ITERATION_RETENTION=2.
    retained = deployment.settings.model_copy(update={"iteration_retention": 2})
    ctx: dict[str, Any] = {
        "resources": dataclasses.replace(app_state(app).resources, settings=retained)
    }
    assert await tasks.apply_iteration_retention(ctx) == 2  # iterations 1 and 2 of `busy`

    after = await stored(app, busy)
    assert after == {
        1: (False, 0),
        2: (False, 0),
        3: (True, lines_per_set),
        4: (True, lines_per_set),
    }
    assert await stored(app, quiet) == {1: (True, lines_per_set)}
    # History survives: the purged iterations keep their row, summary and diff.
    history = await client.get(f"/api/v1/closings/{busy}/iterations/1", headers=bearer(key))
    assert history.status_code == 200 and history.json()["status"] == "succeeded"
    # The served snapshot is untouched.
    assert await snapshot_number(app, busy) == 4
    again = await client.get(f"/api/v1/closings/{busy}/incidences", headers=bearer(key))
    assert again.status_code == 200 and again.json() == served.json()

    # A snapshot serving an older set (e.g. published in between) keeps that set whatever its
    # rank: point it at iteration 3, keep 1, and 3 must stay along with 4.
    async with app_state(app).resources.engine.begin() as conn:
        third = await conn.scalar(
            sa.select(iterations.c.id).where(
                iterations.c.closing_id == busy, iterations.c.number == 3
            )
        )
        await conn.execute(
            sa.update(snapshots).where(snapshots.c.closing_id == busy).values(iteration_id=third)
        )
    engine = app_state(app).resources.engine
    try:
        assert await retention.purge_old_results(engine, keep=1) == 0
        kept = {n for n, (has, _) in (await stored(app, busy)).items() if has}
        assert kept == {3, 4}
    finally:
        async with engine.begin() as conn:
            fourth = await conn.scalar(
                sa.select(iterations.c.id).where(
                    iterations.c.closing_id == busy, iterations.c.number == 4
                )
            )
            await conn.execute(
                sa.update(snapshots)
                .where(snapshots.c.closing_id == busy)
                .values(iteration_id=fourth)
            )
    # Served from 4 again, 3 is just the second newest: keeping one set purges it.
    assert await retention.purge_old_results(engine, keep=1) == 1
    assert {n for n, (has, _) in (await stored(app, busy)).items() if has} == {4}


async def test_purges_only_this_deployments_job_results(app: FastAPI, settings: Settings) -> None:
    redis = app_state(app).resources.redis
    prefix = settings.redis_key_prefix
    ours = [f"arq:result:{prefix}:iteration:{secrets.token_hex(4)}:1" for _ in range(3)]
    theirs = f"arq:result:other-{secrets.token_hex(4)}:iteration:x:1"
    for key in [*ours, theirs]:
        await redis.set(key, b"stale")
    try:
        removed = await tasks.purge_job_results({"resources": app_state(app).resources})
        assert removed == len(ours)
        assert await redis.exists(*ours) == 0
        assert await redis.exists(theirs) == 1
    finally:
        await redis.delete(theirs, *ours)
