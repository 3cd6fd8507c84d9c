"""HEAD works wherever GET does (RFC 9110 §9.3.2): the GET's status and headers, no content."""

from __future__ import annotations

from httpx import AsyncClient, Response

from tests.conftest import KeyMaker, bearer
from tests.helpers import API, stable_headers
from tests.integration.snapshot_cache.support import Worker, ledger, published


def _head_of(response: Response) -> tuple[int, dict[str, str]]:
    return response.status_code, stable_headers(response)


async def test_head_is_the_get_without_its_content(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    key = await make_key("analyst")
    closing = await published(client, key, run_worker, ledger(12))
    for path, headers in [
        ("/alive", {}),
        ("/ready", {}),
        (f"{API}/clients", bearer(key)),
        (f"{API}/closings/{closing.id}", bearer(key)),
        (f"{API}/closings/{closing.id}/incidences", bearer(key)),  # the snapshot's fast lane
        (f"{API}/closings/{closing.id}/incidences", {**bearer(key), "Accept-Encoding": "gzip"}),
        (f"{API}/clients", {}),  # 401, problem+json
    ]:
        got = await client.get(path, headers=headers)
        head = await client.head(path, headers=headers)
        assert head.content == b"", path
        assert _head_of(head) == _head_of(got), path  # Content-Length included
        assert int(head.headers["content-length"]) > 0, path


async def test_head_of_a_resource_without_get_is_refused(
    client: AsyncClient, make_key: KeyMaker
) -> None:
    key = await make_key("analyst")
    refused = await client.head(f"{API}/admin/cache/invalidate", headers=bearer(key))
    assert refused.status_code == 405
    assert refused.content == b""
