"""The fast lane of GET /incidences answers exactly as the route does, and only when it may."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response

from app.api.middleware.snapshot_reads import SnapshotReadFastPath
from app.api.snapshot_view import parse_fast
from app.api.state import app_state
from app.domain.snapshot import SnapshotQuery
from tests.conftest import KeyMaker, bearer
from tests.helpers import API, stable_headers
from tests.integration.snapshot_cache.support import Worker, ledger, published


def _shape(response: Response) -> tuple[int, bytes, dict[str, str]]:
    return response.status_code, response.content, stable_headers(response)


@pytest.fixture
def lane_answers(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records, per request, whether the fast lane answered it."""
    answered: list[bool] = []
    real = SnapshotReadFastPath._answer

    def spy(self: SnapshotReadFastPath, scope: Any) -> Any:
        result = real(self, scope)
        answered.append(result is not None)
        return result

    monkeypatch.setattr(SnapshotReadFastPath, "_answer", spy)
    return answered


async def test_fast_lane_matches_the_route(
    app: FastAPI,
    client: AsyncClient,
    make_key: KeyMaker,
    run_worker: Worker,
    lane_answers: list[bool],
) -> None:
    key = await make_key("analyst")
    closing = await published(client, key, run_worker, ledger(12))
    path = f"{API}/closings/{closing.id}/incidences"
    etag = (await client.get(path, headers=bearer(key))).headers["ETag"]
    cases: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({}, {}),
        ({}, {"If-None-Match": etag}),
        ({}, {"If-None-Match": f'W/{etag}, "x"'}),
        ({"limit": 5, "offset": 2}, {}),
        ({"severity": "error", "type": "ACCOUNT_NOT_IN_CHART"}, {}),
    ]
    for params, headers in cases:
        lane_answers.clear()
        app_state(app).snapshots.near.clear()  # cold: the route answers, and fills the near cache
        by_route = await client.get(path, params=params, headers={**bearer(key), **headers})
        by_lane = await client.get(path, params=params, headers={**bearer(key), **headers})
        assert lane_answers == [False, True], params  # cold near entry first, then the lane
        assert _shape(by_lane) == _shape(by_route), (params, headers)
        assert by_lane.status_code in (200, 304)

    lane_answers.clear()
    refusals: list[dict[str, Any]] = [
        *({"severity": "bad"}, {"type": "NOPE"}, {"limit": 0}, {"limit": "1e3"}),
        *({"offset": -1}, {"offset": 2**31}),
    ]
    for params in refusals:
        refused = await client.get(path, params=params, headers=bearer(key))
        assert refused.status_code == 422  # the route's validation, not the lane's
    assert (await client.get(path, headers={"Authorization": "Bearer li_nope"})).status_code == 401
    assert (await client.get(path.replace("/incidences", "x/incidences"))).status_code in (
        401,
        404,
        422,
    )
    assert not any(lane_answers)


def test_parse_fast_accepts_only_what_the_route_takes_as_is() -> None:
    assert parse_fast(b"") == SnapshotQuery()
    assert parse_fast(b"limit=10&offset=3&severity=warning&type=ROW_INVALID") == SnapshotQuery(
        type="ROW_INVALID", severity="warning", limit=10, offset=3
    )
    # Spellings pydantic takes for the route are the same query (one view, one cache key).
    assert parse_fast(b"limit=+10") == parse_fast(b"limit=10") == SnapshotQuery(limit=10)
    odd_queries = [
        *(b"limit=0", b"limit=10001", b"offset=-1", b"severity=fatal", b"type=X", b"type="),
        *(b"type=a&type=b", b"other=1", b"limit=1.5", b"\xff=1", b"offset=2147483648"),
    ]
    for odd in odd_queries:
        assert parse_fast(odd) is None, odd
