"""Snapshots and views go out gzip-compressed to clients that accept it, from bytes compressed
once when they were cached (never per request), with Vary and an ETag per representation, and
304 for each; other JSON answers are compressed per request."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from app.api.encoding import accepts_gzip
from app.api.state import app_state
from app.domain import snapshot as snapshot_module
from tests.conftest import KeyMaker, Worker, bearer
from tests.helpers import API
from tests.integration.snapshot_cache.support import ledger, published

IDENTITY = {"Accept-Encoding": "identity"}
GZIP = {"Accept-Encoding": "gzip"}


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.5", True),
        ("x-gzip", True),
        ("*", True),
        ("gzip;q=0", False),
        ("*;q=0", False),
        ("identity", False),
        ("deflate", False),
        ("*, gzip;q=0", False),
        ("gzip;q=oops", False),
        ("", False),
        (None, False),
    ],
)
def test_accept_encoding_is_read_with_its_weights(header: str | None, accepted: bool) -> None:
    assert accepts_gzip(header) is accepted


@dataclass(frozen=True)
class Raw:
    headers: httpx.Headers
    content: bytes  # as sent: not inflated


async def _raw(client: AsyncClient, path: str, key: str, **headers: str) -> Raw:
    """The answer as sent, without httpx's automatic decompression."""
    request = client.build_request("GET", path, headers={**bearer(key), **headers})
    response = await client.send(request, stream=True)
    try:
        assert response.status_code == 200
        return Raw(response.headers, b"".join([chunk async for chunk in response.aiter_raw()]))
    finally:
        await response.aclose()


async def test_each_representation_has_its_etag_vary_and_304(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    key = await make_key("viewer", tenant=f"repr-{id(client)}")
    analyst = await make_key("analyst", tenant=f"repr-{id(client)}")
    closing = await published(client, analyst, run_worker, ledger(200))
    for params in ("", "?severity=error&limit=50"):
        path = f"{API}/closings/{closing.id}/incidences{params}"
        plain = await client.get(path, headers={**bearer(key), **IDENTITY})
        packed = await client.get(path, headers={**bearer(key), **GZIP})
        assert plain.status_code == packed.status_code == 200
        assert "content-encoding" not in plain.headers
        assert packed.headers["content-encoding"] == "gzip"
        assert plain.headers["vary"] == packed.headers["vary"] == "Accept-Encoding"
        assert packed.content == plain.content  # the same document (httpx inflated it)
        assert packed.headers["etag"] == plain.headers["etag"][:-1] + '-gzip"'
        for etag in (plain.headers["etag"], packed.headers["etag"]):
            for encoding in (IDENTITY, GZIP):
                again = await client.get(
                    path, headers={**bearer(key), **encoding, "If-None-Match": etag}
                )
                assert (again.status_code, again.content) == (304, b"")
                assert again.headers["vary"] == "Accept-Encoding"
                chosen = packed if encoding is GZIP else plain
                assert again.headers["etag"] == chosen.headers["etag"]


async def test_the_gzip_bytes_are_made_once_not_per_request(
    app: FastAPI,
    client: AsyncClient,
    make_key: KeyMaker,
    run_worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = await make_key("analyst")
    closing = await published(client, key, run_worker, ledger(300))
    path = f"{API}/closings/{closing.id}/incidences"
    first = await _raw(client, path, key, **GZIP)  # cached by the publish: compressed there
    calls: list[int] = []
    real = gzip.compress

    def counting(data: bytes, *args: Any, **kwargs: Any) -> bytes:
        calls.append(len(data))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(snapshot_module.gzip, "compress", counting)
    answers = [await _raw(client, path, key, **GZIP) for _ in range(20)]
    assert calls == []  # 20 compressed answers, not one compression
    assert {answer.content for answer in answers} == {first.content}
    assert gzip.decompress(first.content) == (await client.get(path, headers=bearer(key))).content
    app_state(app).snapshots.near.clear()  # the next one comes from Redis: stored compressed
    from_redis = await _raw(client, path, key, **GZIP)
    assert from_redis.content == first.content and calls == []


async def test_other_json_answers_are_compressed_for_clients_that_accept_it(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    key = await make_key("analyst")
    closing = await published(client, key, run_worker, ledger(400))
    for path, smaller in [
        (f"{API}/closings/{closing.id}/iterations/1", 3),  # a diff listing 400 new keys
        (f"{API}/closings/{closing.id}", 1),  # a few hundred bytes
        ("/alive", 0),  # 18 bytes: compressed all the same, as SPEC §6 says of JSON answers
    ]:
        packed = await _raw(client, path, key, **GZIP)
        plain = await _raw(client, path, key, **IDENTITY)
        assert packed.headers["content-encoding"] == "gzip", path
        assert "content-encoding" not in plain.headers
        assert packed.headers["vary"] == plain.headers["vary"] == "Accept-Encoding"
        assert gzip.decompress(packed.content) == plain.content
        assert not smaller or len(packed.content) < len(plain.content) // smaller
    # An answer without content stays without it.
    etag = (await _raw(client, f"{API}/closings/{closing.id}/incidences", key, **GZIP)).headers
    not_modified = await client.get(
        f"{API}/closings/{closing.id}/incidences",
        headers={**bearer(key), **GZIP, "If-None-Match": etag["etag"]},
    )
    assert (not_modified.status_code, not_modified.content) == (304, b"")
    assert "content-encoding" not in not_modified.headers
    assert not_modified.headers["vary"] == "Accept-Encoding"
