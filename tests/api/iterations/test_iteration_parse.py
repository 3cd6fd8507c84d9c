"""The iteration's `parse` (SPEC §3): in every iteration resource, from the 202 body on; what the
upload showed at once, the rest once the worker has read the file."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from httpx import AsyncClient

from tests.conftest import KeyMaker, bearer
from tests.helpers import API, create_closing, get_json, upload

Worker = Callable[[], Awaitable[None]]
HEADER = "Código Cuenta;Fecha;Nº Comprobante;Debe;Haber;Glosa\n"
HEADERS = {
    "account_code": "Código Cuenta",
    "date": "Fecha",
    "voucher": "Nº Comprobante",
    "debit": "Debe",
    "credit": "Haber",
    "description": "Glosa",
}


def ledger() -> bytes:
    rows = "1101;01/10/2026;1;1.234,56;;a\n\n4101;01/10/2026;1;;1.234,56;b\n;;;;;\n"
    return (HEADER + rows).encode("cp1252")


async def test_parse_before_and_after_the_worker_reads_the_file(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    key = await make_key("analyst")
    closing = (await create_closing(client, key)).id
    response = await upload(client, key, closing, ledger())
    assert response.status_code == 202, response.text
    known_at_upload = {
        "kind": "csv",
        "encoding": "cp1252",
        "delimiter": ";",
        "decimal_separator": None,  # to be detected from the amounts
        "decimal_separator_detected": True,
        "headers": HEADERS,
        "rows_read": None,
        "blank_rows_skipped": None,
    }
    assert response.json()["parse"] == known_at_upload
    listed = await get_json(client, key, f"/closings/{closing}/iterations")
    assert listed["items"][0]["parse"] == known_at_upload
    assert (await get_json(client, key, f"/closings/{closing}/iterations/1"))["parse"] == (
        known_at_upload
    )

    await run_worker()
    read = {
        **known_at_upload,
        "decimal_separator": ",",
        "rows_read": 4,
        "blank_rows_skipped": 2,
    }
    iteration = await get_json(client, key, f"/closings/{closing}/iterations/1")
    assert iteration["status"] == "succeeded", iteration
    assert iteration["parse"] == read
    snapshot = await get_json(client, key, f"/closings/{closing}/incidences")
    assert snapshot["statistics"]["debit_total"] == "1234.56"

    # A later iteration reads the stored movements: it shows the same parse from its start.
    reprocessed = await client.post(
        f"{API}/closings/{closing}/reprocess", json={}, headers=bearer(key)
    )
    assert reprocessed.status_code == 202, reprocessed.text
    assert reprocessed.json()["parse"] == read


async def test_a_decimal_separator_given_at_upload(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    key = await make_key("analyst")
    closing = (await create_closing(client, key)).id
    response = await upload(client, key, closing, ledger(), decimal_separator=",")
    parse: dict[str, Any] = response.json()["parse"]
    assert (parse["decimal_separator"], parse["decimal_separator_detected"]) == (",", False)
    await run_worker()
    parse = (await get_json(client, key, f"/closings/{closing}/iterations/1"))["parse"]
    assert (parse["decimal_separator"], parse["decimal_separator_detected"]) == (",", False)


async def test_a_decimal_comma_shown_late_reads_the_file_again(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    """40,000 rows of 1.234 (either reading) come before the first 5,5: the first pieces were
    typed with "." (no evidence yet), so the worker reads the file again with ","."""
    key = await make_key("analyst")
    closing = (await create_closing(client, key)).id
    rows = "".join(
        f"1101;01/10/2026;{n};1.234;;x\n4101;01/10/2026;{n};;1.234;x\n" for n in range(20_000)
    )
    rows += "1101;01/10/2026;L;5,5;;x\n4101;01/10/2026;L;;5,5;x\n"
    assert (await upload(client, key, closing, (HEADER + rows).encode())).status_code == 202
    await run_worker()
    iteration = await get_json(client, key, f"/closings/{closing}/iterations/1")
    assert iteration["status"] == "succeeded", iteration
    assert iteration["parse"]["decimal_separator"] == ","
    assert iteration["movements_processed"] == 40_002
    snapshot = await get_json(client, key, f"/closings/{closing}/incidences")
    assert snapshot["statistics"]["debit_total"] == "24680005.50"  # 20,000 × 1234 + 5.5
