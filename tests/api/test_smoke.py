from httpx import AsyncClient

from tests.conftest import KeyMaker, bearer


async def test_alive(client: AsyncClient) -> None:
    response = await client.get("/alive")
    assert response.status_code == 200


async def test_ready(client: AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200, response.text


async def test_clients_empty_then_created(client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("analyst")
    response = await client.get("/api/v1/clients", headers=bearer(key))
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}
    created = await client.post("/api/v1/clients", json={"name": "Acme"}, headers=bearer(key))
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "Acme"
