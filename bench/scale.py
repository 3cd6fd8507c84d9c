"""How cost grows: many closings queued at once, with 1 and 2 workers, while the API serves
reads; and read throughput against snapshot size.

1. Queues --closings closings of --rows movements each at once (uploads back to back), and
   times upload → every iteration succeeded, with 1 worker and then with 2, while 8 readers
   read a published 1,000-incidence snapshot: total time, movements/s, and the reads' p99.
2. Read throughput and p50/p99 of warm snapshot reads (gzip accepted, as browsers and the
   CLI send) against snapshot size: 100, 1,000 and 10,000 incidences, next to /alive.

Usage: .venv/bin/python bench/scale.py [--closings 20] [--rows 200000] [--seconds 5]
Servers: DATABASE_URL / REDIS_URL when set (a fresh database is created on that server and
dropped afterwards), else embedded ones in a temporary DATA_DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.engine import generate
from bench.read import Round, _publish, _request, _round, _summary
from bench.stack import CLI, bench_stack, free_port, start_service, stop

RUN = secrets.token_hex(3)
READERS = 8


def _queue_and_wait(http: httpx.Client, ledger: Path, closings: int, label: str) -> float:
    """Upload the ledger to `closings` new closings back to back; seconds until all succeeded."""
    client = http.post("/api/v1/clients", json={"name": f"scale {label}"}).raise_for_status()
    locations = []
    started = time.perf_counter()
    for n in range(closings):
        period = f"{2100 + n}-{1 + len(label) % 12:02d}"
        closing = http.post(
            f"/api/v1/clients/{client.json()['id']}/closings", json={"period": period}
        ).raise_for_status()
        with ledger.open("rb") as fh:
            accepted = http.post(
                f"/api/v1/closings/{closing.json()['id']}/ledger",
                files={"file": (ledger.name, fh, "text/csv")},
            ).raise_for_status()
        locations.append(accepted.headers["Location"])
    pending = set(locations)
    while pending:
        for location in list(pending):
            status = http.get(location).raise_for_status().json()["status"]
            if status == "failed":
                raise SystemExit(f"an iteration failed: {location}")
            if status == "succeeded":
                pending.discard(location)
        time.sleep(0.2)
    return time.perf_counter() - started


async def _read_while(port: int, request: bytes, busy: asyncio.Future[float]) -> Round:
    """Readers reading until `busy` is done (each connection reads back to back)."""
    out = Round()
    started = time.perf_counter()
    while not busy.done():
        round_ = await _round(port, request, READERS, 1.0)
        out.latencies += round_.latencies
        out.errors += round_.errors
    out.seconds = time.perf_counter() - started
    return out


async def _scale_phase(
    port: int, http: httpx.Client, ledger: Path, args: argparse.Namespace, read: bytes, label: str
) -> tuple[float, Round]:
    loop = asyncio.get_running_loop()
    busy = loop.run_in_executor(None, _queue_and_wait, http, ledger, args.closings, label)
    reads = await _read_while(port, read, busy)
    return await busy, reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--closings", type=int, default=20)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per read round")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()

    with ExitStack() as stack:
        bench = bench_stack(stack, "scale", RUN)
        ledger = bench.tmp / "ledger.csv"
        generate(ledger, args.rows)
        key = "li_bench_" + RUN + "x" * 24
        port = free_port()
        env = bench.service_env(
            key,
            port,
            RATE_LIMIT_READ="1000000000/60",
            RATE_LIMIT_WRITE="1000000/60",
            RATE_LIMIT_UPLOAD="1000000/60",
            LOG_LEVEL="WARNING",
        )
        start_service(stack, env)
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key}", "Accept-Encoding": "gzip"}
        http = stack.enter_context(httpx.Client(base_url=base, headers=headers, timeout=600))
        read_path = _publish(base, key, 1000)
        read = _request(read_path, key, gzip=True)

        movements = args.closings * args.rows
        print(f"\n{args.closings} closings x {args.rows:,} movements queued at once:")
        print("workers   total s   movements/s   reads meanwhile: req/s   p99 ms   errors")
        for workers in (1, 2):
            if workers == 2:
                extra = subprocess.Popen([*CLI, "worker"], env=env)
                stack.callback(stop, [extra])
            seconds, reads = asyncio.run(
                _scale_phase(port, http, ledger, args, read, f"w{workers}")
            )
            latencies = sorted(reads.latencies)
            p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan")
            print(
                f"{workers:>7} {seconds:9.1f} {movements / seconds:13,.0f} "
                f"{len(latencies) / reads.seconds:24,.0f} {p99:8.1f} {reads.errors:8}"
            )

        print(f"\nwarm reads by snapshot size, {args.connections} connections, gzip accepted:")
        alive = _summary("/alive", [asyncio.run(_round(port, _request("/alive"), 32, 1.0))])
        for incidences in (100, 1_000, 10_000):
            path = _publish(base, key, incidences)
            subprocess.run([*CLI, "cache", "warm"], env=env, check=True, capture_output=True)
            request = _request(path, key, gzip=True)
            asyncio.run(_round(port, request, args.connections, 1.0))  # warm-up
            rounds = [asyncio.run(_round(port, request, args.connections, args.seconds))]
            rate = _summary(f"{incidences:,} inc.", rounds)
            print(f"{'':<12} {rate / alive:.2f}x /alive")
        print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
