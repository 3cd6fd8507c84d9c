"""Every statement the service runs can be cached by SQLAlchemy: one it cannot cache is compiled
again on every execution, which cost uploads and re-processing about 1 ms of the API's event
loop each (a VALUES list in the merge of a queued iteration did that)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from httpx import AsyncClient
from sqlalchemy.engine import Engine
from sqlalchemy.engine.interfaces import CacheStats

from tests.conftest import KeyMaker, Worker, bearer

LEDGER = (
    "fecha,comprobante,cuenta,glosa,tipo_doc,debe,haber\n"
    "2026-10-01,V1,110101,venta,FAC,100.00,0\n"
    "2026-10-01,V1,999999,venta,FAC,0,100.00\n"
    "2026-10-02,V2,110101,venta,XYZ,5.00,0\n"
)


@contextmanager
def uncacheable_statements() -> Iterator[list[str]]:
    """The statements executed meanwhile, by any engine, that SQLAlchemy could not cache."""
    found: list[str] = []

    def check(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        # Compiled statements only: SQL passed as a string is not compiled at all.
        uncached = (CacheStats.NO_CACHE_KEY, CacheStats.CACHING_DISABLED)
        if context is not None and context.compiled is not None and context.cache_hit in uncached:
            found.append(statement)

    sa.event.listen(Engine, "before_cursor_execute", check)
    try:
        yield found
    finally:
        sa.event.remove(Engine, "before_cursor_execute", check)


async def test_the_request_and_processing_paths_run_only_cacheable_statements(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    auth = bearer(await make_key("admin"))
    with uncacheable_statements() as found:
        made = await client.post("/api/v1/clients", json={"name": "Cache"}, headers=auth)
        client_id = made.json()["id"]
        chart = [{"code": "110101", "name": "Caja", "classification": "current_assets"}]
        accounts = f"/api/v1/clients/{client_id}/accounts"
        assert (await client.put(accounts, json=chart, headers=auth)).status_code == 200
        created = await client.post(
            f"/api/v1/clients/{client_id}/closings", json={"period": "2026-10"}, headers=auth
        )
        closing = f"/api/v1/closings/{created.json()['id']}"
        files = {"file": ("l.csv", LEDGER.encode())}
        uploaded = await client.post(f"{closing}/ledger", files=files, headers=auth)
        assert uploaded.status_code == 202, uploaded.text
        # Merged into the queued iteration: by a request with notes, by a chart change.
        for notes in ("first", "second"):
            again = await client.post(f"{closing}/reprocess", json={"notes": notes}, headers=auth)
            assert again.status_code == 202, again.text
        chart[0]["classification"] = "fixed_assets"
        assert (await client.put(accounts, json=chart, headers=auth)).status_code == 200
        await run_worker()
        for path in (
            f"{closing}/incidences",
            f"{closing}/iterations",
            f"{closing}/iterations/1",
            f"/api/v1/clients/{client_id}/closings",
        ):
            answer = await client.get(path, headers=auth)
            assert answer.status_code == 200, (path, answer.text)
        history = (await client.get(f"{closing}/iterations", headers=auth)).json()["items"]
    assert [item["status"] for item in history] == ["succeeded"]
    assert history[0]["coalesced_triggers"] == ["manual", "manual", "classification_updated"]
    assert found == []
