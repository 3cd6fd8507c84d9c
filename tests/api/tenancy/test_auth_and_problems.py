"""API keys (401/403, hashed storage, BOOTSTRAP_API_KEY) and RFC 9457 problem details."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from pydantic import SecretStr

from app.api.state import app_state
from app.main import create_app
from app.settings import Settings
from tests.conftest import KeyMaker, bearer

CLIENTS = "/api/v1/clients"


def assert_problem(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


# --- authentication and roles ------------------------------------------------------------------


async def test_401_without_a_key(client: AsyncClient) -> None:
    response = await client.get(CLIENTS)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_401_with_a_wrong_key(client: AsyncClient) -> None:
    response = await client.get(CLIENTS, headers=bearer("li_" + secrets.token_urlsafe(32)))
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_401_with_a_non_bearer_scheme(client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("admin")
    response = await client.get(CLIENTS, headers={"Authorization": f"Basic {key}"})
    assert_problem(response, 401)


async def test_viewer_may_read_but_not_write(client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("viewer")
    assert (await client.get(CLIENTS, headers=bearer(key))).status_code == 200
    response = await client.post(CLIENTS, json={"name": "Acme"}, headers=bearer(key))
    body = assert_problem(response, 403)
    assert "analyst" in body["detail"]


async def test_analyst_may_write(client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("analyst")
    response = await client.post(CLIENTS, json={"name": "Acme"}, headers=bearer(key))
    assert response.status_code == 201, response.text


async def test_keys_are_stored_hashed(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker
) -> None:
    key = await make_key("viewer", name="hashed-check")
    async with app_state(app).resources.engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT * FROM api_keys"))).mappings().all()
    assert rows
    for row in rows:
        for column, value in row.items():
            assert value != key, f"column {column} holds the key"
            assert value != key.encode(), f"column {column} holds the key"
            if isinstance(value, str):
                assert key not in value, f"column {column} contains the key"
    digests = {row["key_hash"] for row in rows}
    assert hashlib.sha256(key.encode()).digest() in {bytes(d) for d in digests}
    assert (await client.get(CLIENTS, headers=bearer(key))).status_code == 200


async def test_bootstrap_api_key_is_an_admin_of_the_default_tenant(settings: Settings) -> None:
    key = "li_bootstrap_" + secrets.token_urlsafe(24)
    application = create_app(settings.model_copy(update={"bootstrap_api_key": SecretStr(key)}))
    async with (
        LifespanManager(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://test") as http,
    ):
        assert (await http.get(CLIENTS, headers=bearer(key))).status_code == 200
        created = await http.post(CLIENTS, json={"name": "Boot"}, headers=bearer(key))
        assert created.status_code == 201, created.text
        async with app_state(application).resources.engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        sa.text(
                            "SELECT t.name AS tenant, k.role FROM api_keys k "
                            "JOIN tenants t ON t.id = k.tenant_id WHERE k.key_hash = :digest"
                        ),
                        {"digest": hashlib.sha256(key.encode()).digest()},
                    )
                )
                .mappings()
                .one()
            )
    assert row["tenant"] == "default"
    assert row["role"] == "admin"


# --- problem details ---------------------------------------------------------------------------


async def test_404_for_an_unknown_path(client: AsyncClient) -> None:
    body = assert_problem(await client.get("/api/v1/no-such-thing"), 404)
    assert body["type"]


async def test_404_for_an_unknown_client(client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("viewer")
    assert_problem(await client.get(f"{CLIENTS}/{uuid.uuid4()}", headers=bearer(key)), 404)


async def test_404_for_another_tenants_client(client: AsyncClient, make_key: KeyMaker) -> None:
    owner, stranger = await make_key("analyst"), await make_key("admin")
    created = await client.post(CLIENTS, json={"name": "Mine"}, headers=bearer(owner))
    assert created.status_code == 201, created.text
    response = await client.get(f"{CLIENTS}/{created.json()['id']}", headers=bearer(stranger))
    assert_problem(response, 404)


async def test_405_for_an_unsupported_method(client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("admin")
    response = await client.delete(CLIENTS, headers=bearer(key))
    assert_problem(response, 405)
    assert "GET" in response.headers.get("allow", "")


async def test_422_for_invalid_json(client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("analyst")
    response = await client.post(
        CLIENTS,
        content=b'{"name": "Acme",',
        headers={**bearer(key), "Content-Type": "application/json"},
    )
    body = assert_problem(response, 422)
    assert isinstance(body["errors"], list) and body["errors"]


async def test_422_for_a_missing_field(client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("analyst")
    response = await client.post(CLIENTS, json={"tax_id": "76.123.456-7"}, headers=bearer(key))
    body = assert_problem(response, 422)
    assert isinstance(body["errors"], list) and body["errors"]
    assert any("name" in [str(part) for part in error["loc"]] for error in body["errors"])


async def test_a_padded_name_over_the_documented_length_is_422(
    client: AsyncClient, make_key: KeyMaker
) -> None:
    """What schemathesis found: 200 letters and a no-break space are 201 characters, over the
    documented maxLength of 200, however short they are once trimmed."""
    key = await make_key("analyst")
    response = await client.post(CLIENTS, json={"name": "a" * 200 + "\xa0"}, headers=bearer(key))
    body = assert_problem(response, 422)
    assert body["detail"] == "body.name: String should have at most 200 characters"
    created = await client.post(CLIENTS, json={"name": "\xa0Andes SpA "}, headers=bearer(key))
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "Andes SpA"


async def test_500_is_a_problem_without_internals(settings: Settings) -> None:
    application = create_app(settings)
    marker = "secret-internal-detail-" + secrets.token_hex(4)

    @application.get("/boom-for-test")
    async def boom() -> None:
        raise RuntimeError(marker)

    async with (
        LifespanManager(application),
        AsyncClient(
            transport=ASGITransport(app=application, raise_app_exceptions=False),
            base_url="http://test",
        ) as http,
    ):
        response = await http.get("/boom-for-test")
    assert_problem(response, 500)
    assert marker not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text
