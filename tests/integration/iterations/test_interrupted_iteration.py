"""A worker that loses Postgres mid-run does not fail the iteration: it hands the claim back and
queues a job that takes it over at once; if Postgres stays away, the lease and the sweeper do.
An iteration out of attempts is failed, and the one waiting behind it starts at once."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.exc import InterfaceError

from app.adapters.postgres.tables import iterations, snapshots
from app.api.state import app_state
from app.services.iterations import claims, sweeper
from app.services.iterations import run as processing
from app.services.ops import job_metrics
from tests.conftest import KeyMaker, Worker
from tests.helpers import create_closing, upload

LEDGER = (
    b"fecha,comprobante,cuenta,glosa,debe,haber\n"
    b"2026-10-01,V1,1101,x,5,0\n"
    b"2026-10-01,V1,2101,x,0,5\n"
)


def _connection_lost() -> InterfaceError:
    """What SQLAlchemy raises when the server closes the connection under a query."""
    orig = Exception("connection was closed in the middle of operation")
    orig.__cause__ = asyncpg.ConnectionDoesNotExistError("connection was closed")
    return InterfaceError("INSERT INTO iteration_results ...", None, orig)


def _lose_the_connection_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first evaluation of the test loses its connection; the next ones run for real."""
    real = processing.evaluate_iteration
    lost: list[bool] = []

    async def evaluate(*args: Any, **kwargs: Any) -> Any:
        if not lost:
            lost.append(True)
            raise _connection_lost()
        return await real(*args, **kwargs)

    monkeypatch.setattr(processing, "evaluate_iteration", evaluate)


@pytest.fixture
async def closing_id(client: AsyncClient, make_key: KeyMaker) -> str:
    """A fresh closing whose ledger was just accepted: its iteration is queued, with a job."""
    key = await make_key("analyst")
    closing = await create_closing(client, key)
    accepted = await upload(client, key, closing.id, LEDGER)
    assert accepted.status_code == 202, accepted.text
    return closing.id


async def _row(app: FastAPI, closing_id: str) -> Any:
    async with app_state(app).resources.engine.connect() as conn:
        return (
            await conn.execute(
                sa.select(
                    iterations.c.status,
                    iterations.c.attempts,
                    iterations.c.heartbeat_at,
                    sa.select(sa.func.count())
                    .select_from(snapshots)
                    .where(snapshots.c.closing_id == closing_id)
                    .scalar_subquery()
                    .label("published"),
                ).where(iterations.c.closing_id == closing_id)
            )
        ).one()


async def _interrupted_jobs(app: FastAPI) -> float:
    resources = app_state(app).resources
    stats = await job_metrics.read(resources.redis, resources.settings.redis_key_prefix)
    return stats.get("jobs:interrupted", 0)


async def test_a_lost_connection_hands_the_iteration_back_and_it_runs_again_at_once(
    app: FastAPI, closing_id: str, run_worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    _lose_the_connection_once(monkeypatch)
    interrupted = await _interrupted_jobs(app)

    # One burst: the first job is interrupted and queues the next attempt's job, which the
    # same burst runs (no lease to wait for, no sweeper).
    await run_worker()

    row = await _row(app, closing_id)
    assert (row.status, row.attempts, row.published) == ("succeeded", 2, 1)
    assert await _interrupted_jobs(app) == interrupted + 1


async def test_with_postgres_still_away_the_lease_expires_and_the_sweeper_retries(
    app: FastAPI, closing_id: str, run_worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    _lose_the_connection_once(monkeypatch)

    async def unreachable(*args: Any) -> bool:
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(claims, "release", unreachable)
    monkeypatch.setattr(processing, "RELEASE_RETRY_DELAYS", (0.0, 0.0))
    await run_worker()
    monkeypatch.undo()

    # Neither failed nor queued again: still running, its lease untouched (Postgres was away).
    row = await _row(app, closing_id)
    assert (row.status, row.attempts, row.published) == ("running", 1, 0)
    assert row.heartbeat_at is not None and row.heartbeat_at.year > 1970

    # Once the lease has expired (made so here), the sweeper queues it and it completes.
    async with app_state(app).resources.engine.begin() as conn:
        await conn.execute(
            sa.update(iterations)
            .where(iterations.c.closing_id == closing_id)
            .values(heartbeat_at=sa.func.now() - sa.text("interval '1 hour'"))
        )
    assert await sweeper.sweep(app_state(app).resources) >= 1
    await run_worker()
    row = await _row(app, closing_id)
    assert (row.status, row.attempts, row.published) == ("succeeded", 2, 1)


async def test_release_makes_the_claim_takeable_at_once_only_by_its_owner(
    app: FastAPI, closing_id: str, run_worker: Worker
) -> None:
    engine = app_state(app).resources.engine
    async with engine.connect() as conn:
        iteration_id = await conn.scalar(
            sa.select(iterations.c.id).where(iterations.c.closing_id == closing_id)
        )
    lease = app_state(app).resources.settings.iteration_lease_seconds
    first = await claims.claim(engine, iteration_id, lease)
    assert first is not None and await claims.claim(engine, iteration_id, lease) is None  # live

    assert await claims.release(engine, first)
    second = await claims.claim(engine, iteration_id, lease)  # no need to wait for the lease
    assert second is not None and second.attempt == first.attempt + 1
    assert not await claims.release(engine, first)  # no longer its claim: nothing changes
    assert await claims.claim(engine, iteration_id, lease) is None

    assert await claims.release(engine, second)
    await run_worker()  # the upload's job takes it over, as a third attempt
    row = await _row(app, closing_id)
    assert (row.status, row.attempts, row.published) == ("succeeded", 3, 1)


async def test_an_iteration_out_of_attempts_fails_and_hands_over_the_one_waiting(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    key = await make_key("analyst")
    closing_id = (await create_closing(client, key)).id
    first = await upload(client, key, closing_id, LEDGER)
    assert first.status_code == 202, first.text
    # Its worker died during each of its attempts (the last lease has expired), and a newer
    # upload queued an iteration behind it.
    async with app_state(app).resources.engine.begin() as conn:
        await conn.execute(
            sa.update(iterations)
            .where(iterations.c.closing_id == closing_id)
            .values(
                status="running",
                attempts=claims.MAX_ATTEMPTS,
                started_at=sa.func.now(),
                heartbeat_at=sa.func.now() - sa.text("interval '1 hour'"),
            )
        )
    newer = await upload(client, key, closing_id, LEDGER)
    assert newer.status_code == 202, newer.text

    # One burst, no sweeper: the exhausted one is failed, and the waiting one runs at once.
    await run_worker()
    async with app_state(app).resources.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(iterations.c.number, iterations.c.status, iterations.c.error)
                .where(iterations.c.closing_id == closing_id)
                .order_by(iterations.c.number)
            )
        ).all()
    assert [(r.number, r.status) for r in rows] == [(1, "failed"), (2, "succeeded")]
    assert rows[0].error["type"] == "/problems/iteration-abandoned"
