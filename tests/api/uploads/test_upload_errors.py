"""POST /closings/{id}/ledger: every refusal is a problem+json and stores nothing (SPEC §3, §6);
an accepted upload queues one iteration, and a second one is merged into it (SPEC §5)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.adapters.postgres.tables import ledgers
from app.api.state import app_state
from app.main import create_app
from app.services.uploads import store
from app.settings import Settings
from tests.conftest import KeyMaker, bearer
from tests.helpers import API, assert_problem, create_closing, get_json, upload
from tests.workbooks import JE_HEADER, je_like_workbook

GOOD = b"fecha,comprobante,cuenta,debe,haber\n2026-10-01,V1,1101,10,0\n2026-10-01,V1,4101,0,10\n"


async def assert_nothing_stored(app: FastAPI, client: AsyncClient, key: str, closing: str) -> None:
    assert (await get_json(client, key, f"/closings/{closing}/iterations"))["items"] == []
    assert (await get_json(client, key, f"/closings/{closing}"))["latest_iteration"] is None
    async with app_state(app).resources.engine.connect() as conn:
        stored = await conn.scalar(
            sa.select(sa.func.count()).select_from(ledgers).where(ledgers.c.closing_id == closing)
        )
    assert stored == 0


@pytest.fixture
async def analyst(make_key: KeyMaker) -> str:
    return await make_key("analyst")


@pytest.mark.parametrize(
    ("header", "delimiter", "missing"),
    [
        (["fecha", "cuenta", "debe", "haber", "glosa"], ",", ["voucher"]),
        (["Date", "Voucher", "Account_Code", "Detalle"], ";", ["debit", "credit"]),
        (["monto", "glosa"], "\t", ["account_code", "date", "voucher"]),
    ],
)
async def test_missing_required_columns(
    app: FastAPI,
    client: AsyncClient,
    analyst: str,
    header: list[str],
    delimiter: str,
    missing: list[str],
) -> None:
    closing = (await create_closing(client, analyst)).id
    rows = delimiter.join(header) + "\n" + delimiter.join("1" for _ in header) + "\n"
    body = assert_problem(await upload(client, analyst, closing, rows.encode()), 422)
    assert body["missing_fields"] == missing
    assert body["header_found"] == header
    for name in (*missing, *header):
        assert name in body["detail"]
    await assert_nothing_stored(app, client, analyst, closing)


async def test_missing_columns_of_a_real_workbook(
    app: FastAPI, client: AsyncClient, analyst: str, tmp_path: Path
) -> None:
    """A je_samples-like workbook without column_map: Debit/Credit/Amount match, the key fields
    do not."""
    workbook = je_like_workbook(tmp_path / "je_samples.xlsx", vouchers=20).path
    closing = (await create_closing(client, analyst)).id
    content = await asyncio.to_thread(workbook.read_bytes)
    body = assert_problem(await upload(client, analyst, closing, content, workbook.name), 422)
    assert body["missing_fields"] == ["account_code", "date", "voucher"]
    assert body["header_found"] == JE_HEADER
    assert "JENumber" in body["detail"] and "GLAccountNumber" in body["detail"]
    await assert_nothing_stored(app, client, analyst, closing)


@pytest.mark.parametrize(
    "content",
    [
        b"fecha,comprobante,cuenta,debe,haber\n",
        b"\xef\xbb\xbffecha;comprobante;cuenta;monto\n;;;\n\n",
    ],
)
async def test_header_without_movements(
    app: FastAPI, client: AsyncClient, analyst: str, content: bytes
) -> None:
    closing = (await create_closing(client, analyst)).id
    assert_problem(await upload(client, analyst, closing, content), 422)
    await assert_nothing_stored(app, client, analyst, closing)


@pytest.fixture(scope="module")
async def small_app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings.model_copy(update={"max_upload_bytes": 1000}))
    async with LifespanManager(application):
        yield application


def multipart(content: bytes, boundary: str = "b0undary-of-the-test") -> tuple[bytes, str]:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    return (
        head + content + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


async def test_over_max_upload_bytes(
    app: FastAPI, small_app: FastAPI, client: AsyncClient, analyst: str
) -> None:
    closing = (await create_closing(client, analyst)).id
    big = GOOD + b"2026-10-02,V2,1101,1,0\n" * 60
    assert len(big) > 1000
    async with AsyncClient(transport=ASGITransport(app=small_app), base_url="http://t") as http:
        honest = await upload(http, analyst, closing, big)
        assert int(honest.request.headers["content-length"]) > 1000
        assert "1000" in assert_problem(honest, 413)["detail"]

        body, content_type = multipart(big)

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 200):
                yield body[start : start + 200]

        chunked = await http.post(
            f"{API}/closings/{closing}/ledger",
            content=chunks(),
            headers={**bearer(analyst), "Content-Type": content_type},
        )
        assert "content-length" not in chunked.request.headers
        assert_problem(chunked, 413)
        await assert_nothing_stored(app, client, analyst, closing)
        # Under the limit, the same app accepts it.
        small = await upload(http, analyst, closing, GOOD)
        assert small.status_code == 202, small.text


_B = "b0undary-of-the-test"
_FILE_HEAD = f'--{_B}\r\nContent-Disposition: form-data; name="file"; filename="l.csv"\r\n\r\n'


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        pytest.param(_FILE_HEAD.encode() + GOOD, 400, "closing boundary", id="truncated"),
        pytest.param(b"no multipart at all", 400, "malformed", id="not-multipart"),
        pytest.param(
            (_FILE_HEAD + "x\r\n" + _FILE_HEAD).encode() + GOOD + f"\r\n--{_B}--\r\n".encode(),
            400,
            "more than one `file` part",
            id="two-files",
        ),
        pytest.param(
            f'--{_B}\r\nContent-Disposition: form-data; name="file"\r\n\r\n'.encode()
            + GOOD
            + f"\r\n--{_B}--\r\n".encode(),
            422,
            "must be a file",
            id="file-as-text",
        ),
        pytest.param(
            f"--{_B}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{_B}--\r\n".encode(),
            400,
            "name",
            id="part-without-name",
        ),
        pytest.param(
            "".join(
                f'--{_B}\r\nContent-Disposition: form-data; name="f{n}"\r\n\r\nx\r\n'
                for n in range(11)
            ).encode()
            + f"--{_B}--\r\n".encode(),
            400,
            "Too many form fields",
            id="eleven-fields",
        ),
        pytest.param(
            f'--{_B}\r\nContent-Disposition: form-data; name="column_map"\r\n\r\n'.encode()
            + b"x" * (1024 * 1024 + 1)
            + f"\r\n--{_B}--\r\n".encode(),
            413,
            "over 1 MiB",
            id="huge-field",
        ),
        pytest.param(
            f'--{_B}\r\nContent-Disposition: form-data; name="ledger"; filename="l.csv"\r\n'
            "\r\n".encode()
            + GOOD
            + f"\r\n--{_B}--\r\n".encode(),
            422,
            "Unknown file part 'ledger': the ledger goes in a part named `file`",
            id="file-under-another-name",
        ),
        pytest.param(
            f'--{_B}\r\nContent-Disposition: form-data; name="column_map"; filename="m"\r\n'
            "\r\n".encode()
            + b"{}"
            + f"\r\n--{_B}--\r\n".encode(),
            422,
            "must be plain form fields",
            id="option-as-file",
        ),
        pytest.param(  # a part may not pile up headers (the parser allows 8 of 4 KiB)
            f'--{_B}\r\nContent-Disposition: form-data; name="file"; filename="l.csv"\r\n'.encode()
            + b"".join(b"X-Pad-%d: %s\r\n" % (n, b"p" * 4000) for n in range(100))
            + b"\r\n"
            + GOOD
            + f"\r\n--{_B}--\r\n".encode(),
            400,
            "malformed",
            id="piled-up-part-headers",
        ),
        pytest.param(
            f'--{_B}\r\nContent-Disposition: form-data; name="file"; filename="l.csv"\r\n'.encode()
            + b"X-Long: "
            + b"p" * (1024 * 1024)
            + b"\r\n\r\n"
            + GOOD
            + f"\r\n--{_B}--\r\n".encode(),
            400,
            "malformed",
            id="one-huge-part-header",
        ),
    ],
)
async def test_malformed_multipart(
    app: FastAPI, client: AsyncClient, analyst: str, body: bytes, status: int, says: str
) -> None:
    closing = (await create_closing(client, analyst)).id
    response = await client.post(
        f"{API}/closings/{closing}/ledger",
        content=body,
        headers={**bearer(analyst), "Content-Type": f"multipart/form-data; boundary={_B}"},
    )
    assert says in assert_problem(response, status)["detail"]
    await assert_nothing_stored(app, client, analyst, closing)


async def test_a_closed_closing_refuses_before_the_body_is_read(
    client: AsyncClient, analyst: str
) -> None:
    closing = (await create_closing(client, analyst)).id
    closed = await client.patch(
        f"{API}/closings/{closing}", json={"status": "closed"}, headers=bearer(analyst)
    )
    assert closed.status_code == 200, closed.text
    read = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal read
        for _ in range(64):
            read += 1
            yield b"x" * 65536

    response = await client.post(
        f"{API}/closings/{closing}/ledger",
        content=body(),
        headers={**bearer(analyst), "Content-Type": f"multipart/form-data; boundary={_B}"},
    )
    assert_problem(response, 409)
    assert read < 64  # answered without receiving the 4 MiB body


@pytest.mark.parametrize(
    ("content", "filename"),
    [
        (bytes(range(256)) * 8, "junk.bin"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "ledger.csv"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "ledger.pdf"),
        (b"PK\x03\x04" + bytes(200), "ledger.xlsx"),
        (GOOD, "ledger.xlsx"),
    ],
)
async def test_not_csv_nor_xlsx(
    app: FastAPI, client: AsyncClient, analyst: str, content: bytes, filename: str
) -> None:
    closing = (await create_closing(client, analyst)).id
    assert_problem(await upload(client, analyst, closing, content, filename), 415)
    await assert_nothing_stored(app, client, analyst, closing)


@pytest.mark.parametrize(
    ("form", "mentions"),
    [
        ({"decimal_separator": ";"}, "decimal_separator"),
        ({"column_map": '{"voucher": "comprobante"'}, "column_map"),
        ({"column_map": '["voucher", "comprobante"]'}, "column_map"),
        ({"column_map": '{"voucher": 3}'}, "column_map"),
        ({"column_map": '{"voucher": "Asiento contable"}'}, "Asiento contable"),
        ({"column_map": '{"colour": "glosa"}'}, "colour"),
    ],
)
async def test_bad_options(
    app: FastAPI, client: AsyncClient, analyst: str, form: dict[str, str], mentions: str
) -> None:
    closing = (await create_closing(client, analyst)).id
    body = assert_problem(await upload(client, analyst, closing, GOOD, **form), 422)
    assert mentions in body["detail"]
    await assert_nothing_stored(app, client, analyst, closing)


async def test_who_and_where(app: FastAPI, client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("analyst", tenant="upload-errors-a")
    closing = (await create_closing(client, key)).id
    viewer = await make_key("viewer", tenant="upload-errors-a")
    assert_problem(await upload(client, viewer, closing, GOOD), 403)
    stranger = await make_key("admin")
    assert_problem(await upload(client, stranger, closing, GOOD), 404)
    not_multipart = await client.post(
        f"{API}/closings/{closing}/ledger", json={"file": GOOD.decode()}, headers=bearer(key)
    )
    assert "multipart" in assert_problem(not_multipart, 422)["detail"]
    no_file = await client.post(
        f"{API}/closings/{closing}/ledger", files={"other": ("x.csv", GOOD)}, headers=bearer(key)
    )
    assert "file" in assert_problem(no_file, 422)["detail"]
    await assert_nothing_stored(app, client, key, closing)
    reprocess = f"{API}/closings/{closing}/reprocess"
    assert_problem(await client.post(reprocess, json={}, headers=bearer(key)), 409)  # no ledger
    patched = await client.patch(
        f"{API}/closings/{closing}", json={"status": "closed"}, headers=bearer(key)
    )
    assert patched.status_code == 200, patched.text
    assert_problem(await upload(client, key, closing, GOOD), 409)
    assert_problem(await client.post(reprocess, json={}, headers=bearer(key)), 409)
    await assert_nothing_stored(app, client, key, closing)


async def test_accepted_uploads_coalesce(
    client: AsyncClient, analyst: str, run_worker: Callable[[], Awaitable[None]]
) -> None:
    closing = (await create_closing(client, analyst)).id
    location = f"{API}/closings/{closing}/iterations/1"
    first = await upload(client, analyst, closing, GOOD)
    assert first.status_code == 202, first.text
    assert first.headers["Location"] == location
    assert first.json()["number"] == 1
    assert first.json()["status"] == "queued"
    assert first.json()["trigger"] == "initial"
    assert first.json()["coalesced_triggers"] == []
    assert first.json()["requested_by"] == "test"

    replacement = GOOD + b"2026-10-02,V2,1101,5,0\n2026-10-02,V2,4101,0,5\n"
    second = await upload(client, analyst, closing, replacement)  # iteration 1 is still queued
    assert second.status_code == 202, second.text
    assert second.headers["Location"] == location
    assert second.json()["number"] == 1
    assert second.json()["trigger"] == "initial"
    assert second.json()["coalesced_triggers"] == ["ledger_replaced"]
    queued = (await get_json(client, analyst, f"/closings/{closing}/iterations"))["items"]
    assert [(i["number"], i["status"]) for i in queued] == [(1, "queued")]

    await run_worker()
    done = await get_json(client, analyst, f"/closings/{closing}/iterations/1")
    assert done["status"] == "succeeded", done
    assert done["movements_processed"] == replacement.count(b"\n") - 1  # the newest ledger ran

    third = await upload(client, analyst, closing, GOOD)
    assert third.status_code == 202, third.text
    assert third.headers["Location"] == f"{API}/closings/{closing}/iterations/2"
    assert (third.json()["number"], third.json()["trigger"]) == (2, "ledger_replaced")
    assert third.json()["coalesced_triggers"] == []
    await run_worker()


async def test_a_connection_closed_under_the_block_copy_is_a_503(
    app: FastAPI, client: AsyncClient, analyst: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The blocks go in by the driver's own COPY, which raises asyncpg's error as is when Postgres
    # closed the pooled connection (a restart): an outage to retry, not a 500 (CI saw one in
    # tests/chaos/test_postgres_restart.py).
    async def closed_under_it(*args: object) -> None:
        raise asyncpg.InterfaceError("connection is closed")

    monkeypatch.setattr(store, "append_file_chunks", closed_under_it)
    closing = (await create_closing(client, analyst)).id
    rows = "fecha,comprobante,cuenta,debe,haber\n2026-10-01,1,1101,10,0\n"
    response = await upload(client, analyst, closing, rows.encode())
    body = assert_problem(response, 503)
    assert body["type"] == "/problems/service-unavailable"
    assert response.headers["Retry-After"] == "5"
