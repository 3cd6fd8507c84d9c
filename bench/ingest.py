"""End-to-end ingestion benchmark against a raw COPY baseline measured in the same run.

Generates an N-movement CSV ledger, starts the API (uvicorn) and a worker as real processes,
and --runs times (interleaved, so that both see the same machine): uploads the file over HTTP
to a new closing and waits for its iteration to succeed, and times a plain `COPY` of the same
file into a fresh text table of the same Postgres. Prints every run, the best and the median of
both, their ratios, movements/s, and the worker's peak RSS during each run.

Each run uploads the file twice, in alternating order: through an API whose uploads are parsed
while they arrive, and through a second one, sharing the worker, whose uploads are parsed by
their iteration once accepted (PARSE_WHILE_UPLOADING=false): the ratio of the two is what
parsing while uploading saves.

--export re-exports the generated file as another program would write it (Windows line ends,
every field quoted, or Spanish-speaking countries' `;` and `1.234.567,89`): the COPY reads the
same file.

Usage: .venv/bin/python bench/ingest.py [--rows 1000000] [--runs 3]
       [--export plain|crlf|quoted|spanish]
Servers: DATABASE_URL / REDIS_URL when set (a fresh database is created on that server and
dropped afterwards), else embedded ones in a temporary DATA_DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import asyncpg
import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.engine import EXPORTS, HEADER, export_as, generate
from bench.stack import CLI, admin_dsn, bench_stack, free_port, start_service, stop, wait_ready

RUN = secrets.token_hex(3)


async def _copy_once(dsn: str, path: Path, delimiter: str) -> float:
    """One raw COPY of the file into a fresh unindexed text table."""
    columns = [c.strip() for c in HEADER.strip().split(",")]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_raw_copy")
        await conn.execute(
            f"CREATE TABLE bench_raw_copy ({', '.join(f'{c} text' for c in columns)})"
        )
        started = time.perf_counter()
        await conn.copy_to_table(
            "bench_raw_copy", source=path, format="csv", header=True, delimiter=delimiter
        )
        elapsed = time.perf_counter() - started
        await conn.execute("DROP TABLE bench_raw_copy")
    finally:
        await conn.close()
    return elapsed


def _reset_peak_rss(pid: int) -> None:
    """Start the process's peak RSS (VmHWM) over from its current RSS (Linux: clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _service_cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) used so far by the API and the worker, our child processes,
    each with its own children (the API processes of `serve`, their CPU pools)."""
    used = {}
    for child in psutil.Process().children():
        role = "api" if "serve" in child.cmdline() else "worker"
        used.setdefault(role, 0.0)  # both APIs: the one not in use adds next to nothing
        for process in (child, *child.children(recursive=True)):
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                used[role] += times.user + times.system
    return used


def _run_upload(
    http: httpx.Client, dsn: str, client_id: str, period: str, path: Path, poll: float
) -> tuple[float, dict]:
    """Upload the ledger to a new closing and wait for its iteration: (seconds, iteration).

    Its end is watched in Postgres, where `succeeded` is committed: polling the API as often
    would take CPU from the service being measured."""
    closing = http.post(
        f"/api/v1/clients/{client_id}/closings", json={"period": period}
    ).raise_for_status()
    closing_id = closing.json()["id"]
    started = time.perf_counter()
    with path.open("rb") as fh:
        response = http.post(
            f"/api/v1/closings/{closing_id}/ledger",
            files={"file": (path.name, fh, "text/csv")},
        )
    if response.status_code != 202:
        raise SystemExit(f"upload refused: {response.status_code} {response.text}")
    accepted = time.perf_counter() - started
    api_cpu_at_202 = _service_cpu_seconds()["api"]
    asyncio.run(_wait_until_done(dsn, closing_id, poll))
    elapsed = time.perf_counter() - started
    iteration = http.get(response.headers["Location"]).raise_for_status().json()
    if iteration["status"] != "succeeded":
        raise SystemExit(f"iteration failed: {iteration['error']}")
    iteration["accepted_seconds"] = accepted
    iteration["api_cpu_at_202"] = api_cpu_at_202
    return elapsed, iteration


async def _wait_until_done(dsn: str, closing_id: str, poll: float) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        query = "SELECT status FROM iterations WHERE closing_id = $1 AND number = 1"
        while True:
            if await conn.fetchval(query, uuid.UUID(closing_id)) in ("succeeded", "failed"):
                return
            await asyncio.sleep(poll)
    finally:
        await conn.close()


def _ratios(label: str, ingests: list[float], copies: list[float]) -> None:
    best, median = min(ingests), statistics.median(ingests)
    print(
        f"{label}: end to end best {best:.2f} s, median {median:.2f} s; / COPY best/best "
        f"{best / min(copies):.2f}x, median/median {median / statistics.median(copies):.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--poll", type=float, default=0.01)
    parser.add_argument(
        "--export", choices=EXPORTS, default="plain", help="as another program exports it"
    )
    args = parser.parse_args()

    with ExitStack() as stack:
        bench = bench_stack(stack, "ingest", RUN)
        tmp, bench_url = bench.tmp, bench.database_url
        dsn = admin_dsn(bench_url)

        print(f"generating {args.rows:,} movements …", flush=True)
        generate(tmp / "ledger.csv", args.rows)
        ledger, delimiter = export_as(tmp / "ledger.csv", args.export)
        size_mib = ledger.stat().st_size / 2**20
        key = "li_bench_" + secrets.token_urlsafe(24)
        settings = {
            "RATE_LIMIT_UPLOAD": "1000/60",
            # A 5M-movement CSV is about 520 MB, over the 512 MiB default limit.
            "MAX_UPLOAD_BYTES": str(max(512 * 2**20, 2 * ledger.stat().st_size)),
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        }
        port = free_port()
        worker = start_service(stack, bench.service_env(key, port, **settings))
        # A second API, beside the first and sharing its worker, whose uploads are parsed by
        # their iterations once accepted: what parsing while uploading saves.
        late_port = free_port()
        late_env = bench.service_env(key, late_port, PARSE_WHILE_UPLOADING="false", **settings)
        late_api = subprocess.Popen([*CLI, "serve"], env=late_env)
        stack.callback(stop, [late_api])
        wait_ready(f"http://127.0.0.1:{late_port}")
        headers = {"Authorization": f"Bearer {key}"}
        apis = {
            mode: stack.enter_context(
                httpx.Client(base_url=f"http://127.0.0.1:{at}", headers=headers, timeout=600)
            )
            for mode, at in (("while uploading", port), ("once accepted", late_port))
        }
        http = apis["while uploading"]
        client_id = http.post("/api/v1/clients", json={"name": f"bench {RUN}"}).json()["id"]

        print(f"file: {args.rows:,} movements, {size_mib:.1f} MiB, exported {args.export!r}")
        ingests: dict[str, list[float]] = {mode: [] for mode in apis}
        copies, peaks, movements = [], [], 0
        for run in range(args.runs):
            copies.append(asyncio.run(_copy_once(dsn, ledger, delimiter)))
            # Alternated: neither mode always runs right after the COPY.
            order = list(apis) if run % 2 == 0 else list(reversed(apis))
            for at, mode in enumerate(order):
                if run or at:  # the previous upload's peak, its job's last steps included
                    peaks.append(_peak_rss_mib(worker.pid))
                cpu_before = _service_cpu_seconds()
                _reset_peak_rss(worker.pid)
                period = f"{2000 + 2 * run + at}-10"
                elapsed, iteration = _run_upload(
                    apis[mode], dsn, client_id, period, ledger, args.poll
                )
                cpu = {
                    role: used - cpu_before[role] for role, used in _service_cpu_seconds().items()
                }
                ingests[mode].append(elapsed)
                api_upload_cpu = iteration["api_cpu_at_202"] - cpu_before["api"]
                movements = iteration["movements_processed"]
                print(
                    f"run {run + 1}, parsed {mode}: end to end {elapsed:.2f} s (202 after "
                    f"{iteration['accepted_seconds']:.2f} s, worker run {iteration['duration_ms']} "
                    f"ms; CPU s API {cpu['api']:.2f} (upload {api_upload_cpu:.2f}), "
                    f"worker {cpu['worker']:.2f}), raw COPY {copies[-1]:.2f} s "
                    f"→ {elapsed / copies[-1]:.2f}x",
                    flush=True,
                )
        time.sleep(2)  # the last job's steps after `succeeded` (cache write, memory release)
        peaks.append(_peak_rss_mib(worker.pid))

    print(f"raw COPY baseline: best {min(copies):.2f} s, median {statistics.median(copies):.2f} s")
    for mode, times in ingests.items():
        _ratios(f"parsed {mode}", times, copies)
    best = min(ingests["while uploading"])
    print(f"{movements / best:,.0f} movements/s at best (target: end to end <= 1.5x COPY)")
    saved = statistics.median(ingests["once accepted"]) / statistics.median(
        ingests["while uploading"]
    )
    print(f"parsing while uploading: {saved:.2f}x faster end to end (median/median)")
    print(
        f"worker peak RSS by upload: {', '.join(f'{peak:.0f}' for peak in peaks)} MiB "
        "(target <= 1024 MiB at 5M movements)"
    )


if __name__ == "__main__":
    main()
