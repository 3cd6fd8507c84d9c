"""Incidence lines have no foreign key (migration 0005): a trigger deletes them with their
iteration, and only theirs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from fastapi import FastAPI
from httpx import AsyncClient

from app.adapters.postgres.tables import closings, incidence_lines, iterations
from app.api.state import app_state
from tests.conftest import KeyMaker
from tests.helpers import create_closing, upload

# Account 9999 is in no chart: one ACCOUNT_NOT_IN_CHART incidence (and others) with lines.
LEDGER = b"fecha,comprobante,cuenta,debe,haber\n2026-10-01,V1,9999,10,0\n2026-10-01,V1,4101,0,10\n"


async def _lines_of(app: FastAPI, closing_id: str) -> int:
    async with app_state(app).resources.engine.connect() as conn:
        return int(
            await conn.scalar(
                sa.select(sa.func.count())
                .select_from(incidence_lines)
                .join(iterations, iterations.c.id == incidence_lines.c.iteration_id)
                .where(iterations.c.closing_id == closing_id)
            )
            or 0
        )


async def test_deleting_a_closing_deletes_the_lines_of_its_iterations_only(
    app: FastAPI,
    client: AsyncClient,
    make_key: KeyMaker,
    run_worker: Callable[[], Awaitable[None]],
) -> None:
    key = await make_key("analyst")
    doomed = await create_closing(client, key, name="Doomed")
    kept = await create_closing(client, key, name="Kept")
    for closing in (doomed, kept):
        assert (await upload(client, key, closing.id, LEDGER)).status_code == 202
    await run_worker()
    assert await _lines_of(app, doomed.id) > 0
    kept_lines = await _lines_of(app, kept.id)
    assert kept_lines > 0
    engine = app_state(app).resources.engine
    async with engine.connect() as conn:
        doomed_iterations = (
            (
                await conn.execute(
                    sa.select(iterations.c.id).where(iterations.c.closing_id == doomed.id)
                )
            )
            .scalars()
            .all()
        )

    async with engine.begin() as conn:  # iterations go by cascade, their lines by the trigger
        await conn.execute(sa.delete(closings).where(closings.c.id == doomed.id))

    async with engine.connect() as conn:
        left = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(incidence_lines)
            .where(incidence_lines.c.iteration_id.in_(doomed_iterations))
        )
    assert left == 0
    assert await _lines_of(app, kept.id) == kept_lines
