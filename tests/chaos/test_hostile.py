"""The hostile corpus (issue #16), against the API and a worker run as real processes: refused
bodies cost the API at most 64 MiB of peak RSS whatever their size and whoever sends them,
/alive stays fast while viewers flood it with diffs, filtered views and drill-downs, a worker
whose lease is stolen mid-parse stops and writes nothing more, and the service stays ready.

Endless request lines and headers are refused too (431). The cases and measurements live in
bench/hostile.py, which prints the same figures. The ledger-file cases (bench/hostile_files.py:
XLSX range bombs and cell floods, wide and ragged CSVs, long quoted fields, a wide file
accepted, more incidences than MAX_INCIDENCES) are uploaded one by one: each gets its answer
(and its iteration its outcome) in bounded time, with the API's growth and the worker's peak
RSS bounded.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bench.hostile import (
    MAX_ALIVE_P99_MS,
    MAX_REFUSED_GROWTH_MIB,
    MAX_WORKER_PEAK_MIB,
    SERVICE_SETTINGS,
    STEAL_SETTINGS,
    refuse_bodies,
    setup,
    steal_lease_mid_parse,
    viewer_flood,
)
from bench.hostile_files import MAX_FILE_SECONDS, run_ledger_files
from tests.chaos.conftest import ChaosStack, eventually

pytestmark = pytest.mark.slow

INCIDENCES = 40_000
FLOOD_SECONDS = 15
VIEWERS = 4
STEAL_ROWS = 600_000


def _refused_bodies_cost_little(port: int, api_pid: int, key: str, ids: dict[str, str]) -> None:
    for result in refuse_bodies(port, api_pid, key, ids):
        what = f"{result.name}: {result.status}, +{result.growth_mib:.1f} MiB"
        assert result.status == result.expect, what
        assert result.growth_mib <= MAX_REFUSED_GROWTH_MIB, what


def _ledger_files(base: str, key: str, client: str, api_pid: int, worker_pid: int) -> None:
    for result in run_ledger_files(base, key, client, api_pid, worker_pid):
        what = (
            f"{result.case.name}: {result.status} {result.detail!r}, API "
            f"+{result.api_growth_mib:.0f} MiB, worker {result.worker_peak_mib:.0f} MiB, "
            f"{result.seconds:.1f} s"
        )
        assert not result.problems(), (what, result.problems())
        assert result.api_growth_mib <= MAX_REFUSED_GROWTH_MIB, what
        assert result.worker_peak_mib <= MAX_WORKER_PEAK_MIB, what
        assert result.seconds <= MAX_FILE_SECONDS, what


async def test_hostile_corpus(chaos_stack: ChaosStack) -> None:
    key = chaos_stack.key
    with (
        chaos_stack.worker(**SERVICE_SETTINGS) as worker,
        chaos_stack.serve(**SERVICE_SETTINGS) as (base, api),
    ):
        port, api_pid = int(base.rsplit(":", 1)[1]), api.process.pid
        ids = await asyncio.to_thread(setup, base, key, INCIDENCES)

        await asyncio.to_thread(_refused_bodies_cost_little, port, api_pid, key, ids)

        flood = await viewer_flood(port, key, ids["closing"], INCIDENCES, FLOOD_SECONDS, VIEWERS)
        p99 = flood.percentile(0.99)
        assert p99 < MAX_ALIVE_P99_MS, f"/alive p99 {p99:.0f} ms ({len(flood.alive_ms)} probes)"
        assert flood.ready_failures == 0 and flood.ready_checks >= FLOOD_SECONDS // 2
        for kind in ("diff", "iteration", "view", "drill-down"):
            answered = flood.answers.get(kind, {})
            assert answered.get(200, 0) > 0, (kind, answered)
            assert set(answered) <= {200, 503}, (kind, answered)  # 503: busy, retry later

        await asyncio.to_thread(
            _ledger_files, base, key, ids["client"], api_pid, worker.process.pid
        )

        # An upload parsed while it arrives leaves no parse to its run: this one is not.
        with chaos_stack.serve(**SERVICE_SETTINGS, **STEAL_SETTINGS) as (steal_base, _):
            steal = await steal_lease_mid_parse(
                steal_base, key, chaos_stack.dsn, worker.stderr_path, STEAL_ROWS
            )
        assert steal.stop_seconds < 3, steal  # a renewal is due every 0.5 s
        assert steal.batches_after == steal.batches_at_steal and not steal.parsed, steal
        async with chaos_stack.client(base) as http:  # the thief's lease lapsed: run again

            async def succeeded() -> bool:
                iteration = (await http.get(steal.location.removeprefix("/api/v1"))).json()
                assert iteration["status"] in ("queued", "running", "succeeded"), iteration
                return iteration["status"] == "succeeded"

            await eventually(succeeded, timeout=180, what="the stolen iteration to be run again")
            assert (await http.get("/clients")).status_code == 200
        ready = await asyncio.to_thread(httpx.get, f"{base}/ready", timeout=5)
        assert ready.status_code == 200
        assert api.process.poll() is None and worker.process.poll() is None
