"""Every body is bounded (SPEC §6): 413 before the body is read whole, with or without a key;
a body sent without a key is refused with 401 before it is read."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from httpx import AsyncClient

from app.api.middleware.body_limit import BULK_BODY_BYTES, ORDINARY_BODY_BYTES
from tests.conftest import KeyMaker, bearer
from tests.helpers import API, assert_problem, create_closing

JSON = {"Content-Type": "application/json"}


async def _chunks(body: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _big_json(size: int) -> bytes:
    """A JSON object of `size` bytes or more: a name that is far too long."""
    return b'{"name": "' + b"x" * size + b'"}'


@pytest.mark.parametrize("with_key", [False, True], ids=["no-key", "key"])
async def test_an_oversized_body_is_refused_before_it_is_read(
    client: AsyncClient, make_key: KeyMaker, with_key: bool
) -> None:
    headers = {**JSON, **(bearer(await make_key("analyst")) if with_key else {})}
    body = _big_json(ORDINARY_BODY_BYTES)
    declared = await client.post(f"{API}/clients", content=body, headers=headers)
    problem = assert_problem(declared, 413)
    assert str(ORDINARY_BODY_BYTES) in problem["detail"]
    assert declared.headers["connection"] == "close"
    form = await client.post(
        f"{API}/clients",
        content=b"name=" + b"x" * ORDINARY_BODY_BYTES,
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(form, 413)
    # Chunked: no Content-Length. With a key, refused once the limit is crossed; without one,
    # refused before a byte of it is read.
    chunked = await client.post(f"{API}/clients", content=_chunks(body), headers=headers)
    assert "content-length" not in chunked.request.headers
    assert_problem(chunked, 413 if with_key else 401)


async def test_a_body_without_a_key_is_refused_before_it_is_read(
    client: AsyncClient, make_key: KeyMaker
) -> None:
    refused = await client.post(f"{API}/clients", content=_chunks(b"{" * 1000), headers=JSON)
    assert "Missing API key" in assert_problem(refused, 401)["detail"]
    assert refused.headers["www-authenticate"] == "Bearer"
    # A key already found invalid (the rate limiter checked it) is refused the same way.
    bogus = bearer("li_made-up-key")
    await client.get(f"{API}/clients", headers=bogus)
    again = await client.post(f"{API}/clients", json={"name": "x"}, headers={**bogus, **JSON})
    assert "Invalid" in assert_problem(again, 401)["detail"]
    # Within the limit and with a key, the body is read as usual.
    key = await make_key("analyst")
    near_limit = {"name": "A", "tax_id": "1" * 100}
    created = await client.post(f"{API}/clients", json=near_limit, headers=bearer(key))
    assert created.status_code in (201, 422), created.text


async def test_other_methods_are_bounded_too(client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("analyst")
    closing = (await create_closing(client, key)).id
    for method, path in (
        ("PATCH", f"{API}/closings/{closing}"),
        ("POST", f"{API}/closings/{closing}/reprocess"),
        ("GET", f"{API}/clients"),
    ):
        response = await client.request(
            method, path, content=_big_json(ORDINARY_BODY_BYTES), headers={**JSON, **bearer(key)}
        )
        assert_problem(response, 413)


async def test_bulk_reference_data_is_bounded_at_16_mib(
    client: AsyncClient, make_key: KeyMaker
) -> None:
    key = await make_key("analyst")
    created = await client.post(f"{API}/clients", json={"name": "Bulk"}, headers=bearer(key))
    url = f"{API}/clients/{created.json()['id']}/accounts"
    csv = {**bearer(key), "Content-Type": "text/csv"}
    # Over 1 MiB is fine here: 2 MiB of accounts are read (and stored).
    rows = b"code,name\n" + b"".join(b"%06d,%s\n" % (n, b"n" * 200) for n in range(10_000))
    assert ORDINARY_BODY_BYTES < len(rows) < BULK_BODY_BYTES
    accepted = await client.put(url, content=rows, headers=csv)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["created"] == 10_000
    huge = b"code,name\n" + b"1," + b"n" * BULK_BODY_BYTES + b"\n"
    assert (
        "16 MiB" in assert_problem(await client.put(url, content=huge, headers=csv), 413)["detail"]
    )
    assert_problem(await client.put(url, content=_chunks(huge), headers=csv), 413)
