"""Clients and closings are listed a page at a time (keyset cursors): every item once, in
order, whatever the page size, and `next_cursor` null exactly on the last page."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient

from app.api.deps import LIST_PAGE_MAX
from tests.conftest import KeyMaker, bearer
from tests.helpers import API, assert_problem

PERIODS = ["2026-10", "2025-12", "2026-01", "1999-07", "2026-02", "9999-12", "0001-01"]


async def _pages(http: AsyncClient, key: str, path: str, limit: int) -> list[list[Any]]:
    """Every page of a list, following next_cursor."""
    pages: list[list[Any]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        response = await http.get(f"{API}{path}", params=params, headers=bearer(key))
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        if body["next_cursor"] is None:
            return pages
        assert len(body["items"]) == limit  # only a full page has a next one
        params["cursor"] = body["next_cursor"]


async def _client_with_closings(http: AsyncClient, key: str) -> str:
    created = await http.post(f"{API}/clients", json={"name": "Andes"}, headers=bearer(key))
    client_id = str(created.json()["id"])
    for period in PERIODS:
        url = f"{API}/clients/{client_id}/closings"
        response = await http.post(url, json={"period": period}, headers=bearer(key))
        assert response.status_code == 201, response.text
    return client_id


@pytest.mark.parametrize(("limit", "sizes"), [(3, [3, 3, 1]), (6, [6, 1]), (7, [7]), (8, [7])])
async def test_closings_pages(
    client: AsyncClient, make_key: KeyMaker, limit: int, sizes: list[int]
) -> None:
    key = await make_key("analyst")
    client_id = await _client_with_closings(client, key)
    pages = await _pages(client, key, f"/clients/{client_id}/closings", limit)
    assert [len(page) for page in pages] == sizes
    listed = [closing["period"] for page in pages for closing in page]
    assert listed == sorted(PERIODS, reverse=True)


async def test_closings_default_page_and_bad_parameters(
    client: AsyncClient, make_key: KeyMaker
) -> None:
    key = await make_key("analyst")
    client_id = await _client_with_closings(client, key)
    path = f"{API}/clients/{client_id}/closings"
    whole = (await client.get(path, headers=bearer(key))).json()
    assert len(whole["items"]) == len(PERIODS) and whole["next_cursor"] is None
    older = await client.get(path, params={"cursor": "2026-01"}, headers=bearer(key))
    assert [c["period"] for c in older.json()["items"]] == ["2025-12", "1999-07", "0001-01"]
    for bad in ({"cursor": "2026-13"}, {"cursor": "x"}, {"limit": 0}, {"limit": LIST_PAGE_MAX + 1}):
        assert_problem(await client.get(path, params=bad, headers=bearer(key)), 422)


async def test_clients_pages_in_creation_order(client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("analyst")
    created = []
    for n in range(5):
        response = await client.post(f"{API}/clients", json={"name": f"C{n}"}, headers=bearer(key))
        created.append(response.json()["id"])
    pages = await _pages(client, key, "/clients", 2)
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [item["id"] for page in pages for item in page] == created


async def test_a_clients_cursor_must_be_one_of_the_callers_clients(
    client: AsyncClient, make_key: KeyMaker
) -> None:
    key, stranger = await make_key("analyst"), await make_key("analyst")
    theirs = await client.post(f"{API}/clients", json={"name": "Theirs"}, headers=bearer(stranger))
    await client.post(f"{API}/clients", json={"name": "Mine"}, headers=bearer(key))
    for cursor in (theirs.json()["id"], str(uuid.uuid4()), "not-a-uuid"):
        response = await client.get(
            f"{API}/clients", params={"cursor": cursor}, headers=bearer(key)
        )
        assert_problem(response, 422)
        assert "Theirs" not in response.text
