"""MAX_INCIDENCES: a ledger that would yield more incidences fails its iteration with a clear
problem before the snapshot is built, and the previous snapshot keeps being served."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from app.settings import Settings
from tests.conftest import KeyMaker, bearer, drain_queue
from tests.helpers import API, create_closing, get_json, upload

HEADER = "fecha,comprobante,cuenta,debe,haber\n"
# One balanced voucher on an account of the chart: no incidence.
CLEAN = HEADER + "2026-10-01,V1,1101,10,0\n2026-10-01,V1,1101,0,10\n"


def unknown_accounts(count: int) -> str:
    """`count` balanced vouchers, each on an account of its own that the chart lacks."""
    rows = (f"2026-10-01,V{n},X{n},5,0\n2026-10-01,V{n},X{n},0,5\n" for n in range(count))
    return HEADER + "".join(rows)


async def test_more_incidences_than_the_limit_fail_and_keep_the_snapshot(
    client: AsyncClient, make_key: KeyMaker, settings: Settings
) -> None:
    key = await make_key("analyst")
    chart = [{"code": "1101", "name": "Caja", "name_en": "Cash", "classification": "assets"}]
    closing = (await create_closing(client, key, chart=chart)).id
    limited = settings.model_copy(update={"max_incidences": 3})

    async def processed(ledger: str, number: int) -> dict[str, Any]:
        """Upload the ledger, run the worker with the limit; iteration `number` as it ended."""
        assert (await upload(client, key, closing, ledger.encode())).status_code == 202
        await drain_queue(limited)
        iteration: dict[str, Any] = await get_json(
            client, key, f"/closings/{closing}/iterations/{number}"
        )
        return iteration

    assert (await processed(CLEAN, 1))["status"] == "succeeded"
    served = await get_json(client, key, f"/closings/{closing}/incidences")
    assert served["statistics"]["incidences_total"] == 0

    # Exactly at the limit: three unknown accounts, three incidences, accepted.
    second = await processed(unknown_accounts(3), 2)
    assert second["status"] == "succeeded", second
    at_limit = await get_json(client, key, f"/closings/{closing}/incidences")
    assert at_limit["statistics"]["incidences_total"] == 3

    # One more than the limit: the iteration fails and says why, with the count it found.
    third = await processed(unknown_accounts(4), 3)
    assert third["status"] == "failed", third
    error = third["error"]
    assert error["type"] == "/problems/too-many-incidences"
    assert error["status"] == 422
    assert "at least 4 incidences" in error["detail"]
    assert "limit of 3" in error["detail"] and "MAX_INCIDENCES" in error["detail"]
    assert third["summary"] is None and third["diff"] is None

    response = await client.get(f"{API}/closings/{closing}/incidences", headers=bearer(key))
    assert response.status_code == 200
    assert response.json()["content_hash"] == at_limit["content_hash"]
    assert response.json()["iteration"] == 2
