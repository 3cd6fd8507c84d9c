"""A write is committed before its answer leaves: a client that got 201 can read the resource
at once from anywhere, and a commit that fails (Postgres gone) is a 503, never a 201 whose row
is then lost."""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from starlette.types import Message, Receive, Scope, Send

from app.adapters.postgres.tables import clients, closings
from app.api.state import app_state
from tests.conftest import KeyMaker, bearer


async def test_created_resources_are_committed_before_the_answer_is_sent(
    app: FastAPI, make_key: KeyMaker
) -> None:
    key = await make_key("analyst")
    engine = app_state(app).resources.engine
    visible: dict[str, Any] = {}

    async def observed(scope: Scope, receive: Receive, send: Send) -> None:
        """The app, but each 201's body is checked against Postgres from another connection
        (which sees committed rows only) at the moment it is sent."""

        async def spy(message: Message) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                created = orjson.loads(message["body"])
                table = closings if "period" in created else clients
                async with engine.connect() as conn:
                    visible[table.name] = await conn.scalar(
                        sa.select(sa.func.count()).where(table.c.id == created["id"])
                    )
            await send(message)

        await app(scope, receive, spy)

    # Identity answers: the spy reads the JSON as it is sent.
    headers = {**bearer(key), "Accept-Encoding": "identity"}
    async with AsyncClient(transport=ASGITransport(app=observed), base_url="http://t") as http:
        client = await http.post("/api/v1/clients", json={"name": "C"}, headers=headers)
        assert client.status_code == 201, client.text
        closing = await http.post(
            f"/api/v1/clients/{client.json()['id']}/closings",
            json={"period": "2026-10"},
            headers=headers,
        )
        assert closing.status_code == 201, closing.text
    assert visible == {"clients": 1, "closings": 1}
