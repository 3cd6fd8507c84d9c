"""Hostile ledger files (issue #16): bounded answers, bounded memory, no thread left reading.

The API and the worker run in this process: PeakRss measures what a request or a job adds.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

from httpx import AsyncClient

from app.settings import Settings
from tests.api.uploads.test_bad_input_corpus import PeakRss, assert_ready
from tests.conftest import KeyMaker
from tests.helpers import assert_problem, create_closing, get_json, upload
from tests.workbooks import rewrite_sheet, write_xlsx

MiB = 1024 * 1024
Worker = Callable[[], Awaitable[None]]
LEDGER_HEADER = ["fecha", "comprobante", "cuenta", "debe", "haber"]


def range_bomb(tmp_path: Path) -> bytes:
    """A workbook of a few kilobytes whose only far cell is XFD1048576: its used range is
    16,384 columns by 1,048,576 rows (calamine built it whole, about 31 bytes a cell)."""
    path = write_xlsx(tmp_path / "bomb.xlsx", [LEDGER_HEADER, ["2026-10-01", "V1", 1101, 5, 0]])
    far = '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData>'
    return rewrite_sheet(path, lambda xml: xml.replace("</sheetData>", far)).read_bytes()


def wide_csv(columns: int, rows: int) -> bytes:
    names = LEDGER_HEADER + [f"c{i}" for i in range(columns - len(LEDGER_HEADER))]
    row = ",".join(["2026-10-01", "V1", "1101", "10", "0"] + ["1"] * (columns - 5)) + "\n"
    return (",".join(names) + "\n").encode() + row.encode() * rows


async def test_an_xlsx_range_bomb_is_refused_and_the_api_lives(
    client: AsyncClient, make_key: KeyMaker, tmp_path: Path
) -> None:
    analyst = await make_key("analyst")
    closing = (await create_closing(client, analyst)).id
    content = range_bomb(tmp_path)
    assert len(content) < 8000
    with PeakRss() as rss:
        response = await upload(client, analyst, closing, content, "ledger.xlsx")
    body = assert_problem(response, 413)
    assert "XFD1048576" in body["detail"] and "column 1000" in body["detail"]
    assert rss.growth_mib < 64, rss.growth_mib
    assert (await get_json(client, analyst, f"/closings/{closing}/iterations"))["items"] == []
    await assert_ready(client)


async def test_a_csv_of_50000_columns_is_refused_while_it_streams(
    client: AsyncClient, make_key: KeyMaker
) -> None:
    analyst = await make_key("analyst")
    closing = (await create_closing(client, analyst)).id
    content = wide_csv(50_000, 2)
    with PeakRss() as rss:
        response = await upload(client, analyst, closing, content)
    assert "50000 columns, more than 1000" in assert_problem(response, 413)["detail"]
    assert rss.growth_mib < 64, rss.growth_mib
    await assert_ready(client)


async def test_the_worker_reads_a_wide_file_in_bounded_memory(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    """1,000 columns (the most), 38 MiB: only the five mapped columns are read."""
    analyst = await make_key("analyst")
    closing = (await create_closing(client, analyst)).id
    content = wide_csv(1000, 20_000)
    assert len(content) > 38 * MiB
    assert (await upload(client, analyst, closing, content)).status_code == 202
    with PeakRss() as worker:
        await run_worker()
    iteration = await get_json(client, analyst, f"/closings/{closing}/iterations/1")
    assert iteration["status"] == "succeeded", iteration
    assert iteration["parse"]["rows_read"] == 20_000
    assert worker.growth_mib < 256, worker.growth_mib


async def test_a_timed_out_job_leaves_no_thread_reading(
    client: AsyncClient, make_key: KeyMaker, settings: Settings
) -> None:
    """A job cancelled mid-parse (arq's timeout) stops its reading threads: they cannot be
    interrupted, so they are told to stop and do after the chunk in hand."""
    from workers.settings import build_worker

    analyst = await make_key("analyst")
    closing = (await create_closing(client, analyst)).id
    row = "2026-10-01,V{n},1101,Caja,10,0\n"
    content = ("fecha,comprobante,cuenta,glosa,debe,haber\n" + row * 400_000).encode()
    assert (await upload(client, analyst, closing, content)).status_code == 202
    worker = build_worker(
        settings, burst=True, poll_delay=0.05, handle_signals=False, job_timeout=0.5
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    for _ in range(100):  # the chunk in hand is finished first: up to a few seconds
        if not _reading_threads():
            break
        await asyncio.sleep(0.05)
    assert not _reading_threads()


def _reading_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "prefetch" and t.is_alive()]
