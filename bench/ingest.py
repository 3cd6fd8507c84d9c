"""End-to-end ingestion benchmark against a raw COPY baseline measured in the same run.

Generates an N-movement CSV ledger, starts the API (uvicorn) and a worker as real processes,
and --runs times (interleaved, so that both see the same machine): uploads the file over HTTP
to a new closing and waits for its iteration to succeed, and times a plain `COPY` of the same
file into a fresh text table of the same Postgres. Prints every run, the best and the median of
both, their ratios, movements/s, and the worker's peak RSS during each run.

Usage: .venv/bin/python bench/ingest.py [--rows 1000000] [--runs 3]
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
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import asyncpg
import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.engine import HEADER, generate
from bench.stack import admin_dsn, bench_stack, free_port, start_service

RUN = secrets.token_hex(3)


async def _copy_once(dsn: str, path: Path) -> float:
    """One raw COPY of the file into a fresh unindexed text table."""
    columns = [c.strip() for c in HEADER.strip().split(",")]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_raw_copy")
        await conn.execute(
            f"CREATE TABLE bench_raw_copy ({', '.join(f'{c} text' for c in columns)})"
        )
        started = time.perf_counter()
        await conn.copy_to_table("bench_raw_copy", source=path, format="csv", header=True)
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
        used[role] = 0.0
        for process in (child, *child.children(recursive=True)):
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                used[role] += times.user + times.system
    return used


def _run_upload(
    http: httpx.Client, client_id: str, period: str, path: Path, poll: float
) -> tuple[float, dict]:
    """Upload the ledger to a new closing and wait for its iteration: (seconds, iteration)."""
    closing = http.post(
        f"/api/v1/clients/{client_id}/closings", json={"period": period}
    ).raise_for_status()
    started = time.perf_counter()
    with path.open("rb") as fh:
        response = http.post(
            f"/api/v1/closings/{closing.json()['id']}/ledger",
            files={"file": (path.name, fh, "text/csv")},
        )
    if response.status_code != 202:
        raise SystemExit(f"upload refused: {response.status_code} {response.text}")
    accepted = time.perf_counter() - started
    api_cpu_at_202 = _service_cpu_seconds()["api"]
    location = response.headers["Location"]
    while True:
        iteration = http.get(location).raise_for_status().json()
        if iteration["status"] in ("succeeded", "failed"):
            break
        time.sleep(poll)
    elapsed = time.perf_counter() - started
    if iteration["status"] != "succeeded":
        raise SystemExit(f"iteration failed: {iteration['error']}")
    iteration["accepted_seconds"] = accepted
    iteration["api_cpu_at_202"] = api_cpu_at_202
    return elapsed, iteration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--poll", type=float, default=0.02)
    args = parser.parse_args()

    with ExitStack() as stack:
        bench = bench_stack(stack, "ingest", RUN)
        tmp, bench_url = bench.tmp, bench.database_url

        ledger = tmp / "ledger.csv"
        print(f"generating {args.rows:,} movements …", flush=True)
        generate(ledger, args.rows)
        size_mib = ledger.stat().st_size / 2**20
        key = "li_bench_" + secrets.token_urlsafe(24)
        port = free_port()
        env = bench.service_env(
            key,
            port,
            RATE_LIMIT_UPLOAD="1000/60",
            # A 5M-movement CSV is about 520 MB, over the 512 MiB default limit.
            MAX_UPLOAD_BYTES=str(max(512 * 2**20, 2 * ledger.stat().st_size)),
            LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        )
        worker = start_service(stack, env)
        headers = {"Authorization": f"Bearer {key}"}
        http = stack.enter_context(
            httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=600)
        )
        client_id = http.post("/api/v1/clients", json={"name": f"bench {RUN}"}).json()["id"]

        print(f"file: {args.rows:,} movements, {size_mib:.1f} MiB")
        ingests, copies, peaks, movements = [], [], [], 0
        for run in range(args.runs):
            copies.append(asyncio.run(_copy_once(admin_dsn(bench_url), ledger)))
            if run:  # the previous run's peak, its job's last steps after `succeeded` included
                peaks.append(_peak_rss_mib(worker.pid))
            cpu_before = _service_cpu_seconds()
            _reset_peak_rss(worker.pid)
            elapsed, iteration = _run_upload(http, client_id, f"{2000 + run}-10", ledger, args.poll)
            cpu = {role: used - cpu_before[role] for role, used in _service_cpu_seconds().items()}
            ingests.append(elapsed)
            api_upload_cpu = iteration["api_cpu_at_202"] - cpu_before["api"]
            movements = iteration["movements_processed"]
            print(
                f"run {run + 1}: end to end {elapsed:.2f} s (202 after "
                f"{iteration['accepted_seconds']:.2f} s, worker run {iteration['duration_ms']} "
                f"ms; CPU s API {cpu['api']:.2f} (upload {api_upload_cpu:.2f}), "
                f"worker {cpu['worker']:.2f}), "
                f"raw COPY {copies[-1]:.2f} s → {elapsed / copies[-1]:.2f}x",
                flush=True,
            )
        time.sleep(2)  # the last job's steps after `succeeded` (cache write, memory release)
        peaks.append(_peak_rss_mib(worker.pid))

    best, median = min(ingests), statistics.median(ingests)
    print(
        f"end to end (upload → succeeded): best {best:.2f} s, median {median:.2f} s "
        f"({movements / best:,.0f} movements/s at best)"
    )
    print(f"raw COPY baseline: best {min(copies):.2f} s, median {statistics.median(copies):.2f} s")
    print(
        f"ratio end-to-end / COPY: best/best {best / min(copies):.2f}x, median/median "
        f"{median / statistics.median(copies):.2f}x  (target <= 1.5x)"
    )
    print(
        f"worker peak RSS by run: {', '.join(f'{peak:.0f}' for peak in peaks)} MiB "
        "(target <= 1024 MiB at 5M movements)"
    )


if __name__ == "__main__":
    main()
