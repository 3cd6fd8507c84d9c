"""Bulk reference-data bodies are read item by item: the item cap holds while reading, and a
body of many bad items answers a bounded list of errors."""

from __future__ import annotations

import orjson
from httpx import AsyncClient

from app.api.bulk import MAX_ERRORS
from app.services.reference_data.changes import MAX_ITEMS
from tests.conftest import KeyMaker, bearer
from tests.helpers import API, assert_problem


async def _accounts_url(client: AsyncClient, key: str) -> str:
    created = await client.post(f"{API}/clients", json={"name": "Bulk"}, headers=bearer(key))
    return f"{API}/clients/{created.json()['id']}/accounts"


async def test_too_many_items_are_refused_and_nothing_is_stored(
    client: AsyncClient, make_key: KeyMaker
) -> None:
    key = await make_key("analyst")
    url = await _accounts_url(client, key)
    json = {**bearer(key), "Content-Type": "application/json"}
    tiny = b"[" + b",".join([b'{"code":"1","name":"n"}'] * (MAX_ITEMS + 1)) + b"]"
    detail = assert_problem(await client.put(url, content=tiny, headers=json), 422)["detail"]
    assert f"more than {MAX_ITEMS}" in detail
    csv = b"code,name\n" + b"".join(b"%d,n\n" % n for n in range(MAX_ITEMS + 1))
    csv_headers = {**bearer(key), "Content-Type": "text/csv"}
    detail = assert_problem(await client.put(url, content=csv, headers=csv_headers), 422)["detail"]
    assert f"more than {MAX_ITEMS}" in detail
    assert (await client.get(url, headers=bearer(key))).json() == {"items": []}


async def test_many_invalid_items_answer_a_bounded_list_of_errors(
    client: AsyncClient, make_key: KeyMaker
) -> None:
    key = await make_key("analyst")
    url = await _accounts_url(client, key)
    bad = [{"code": "", "name": "", "x": n} for n in range(MAX_ITEMS)]
    response = await client.put(
        url, content=orjson.dumps(bad), headers={**bearer(key), "Content-Type": "application/json"}
    )
    problem = assert_problem(response, 422)
    assert len(problem["errors"]) == MAX_ERRORS
    assert problem["errors"][0]["loc"][:2] == ["body", 0]
