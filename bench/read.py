"""Read benchmark: GET /closings/{id}/incidences with a warm cache against GET /alive, same server.

Starts the API (a real uvicorn, `ledger-incidences serve`) and a worker as processes, publishes
a snapshot of --incidences incidences, warms the cache, then drives each path with 32 keep-alive
HTTP/1.1 connections from a minimal asyncio client (so the client costs little CPU), in
alternating rounds. Authenticated, with the rate limiter on (its limit raised so it never
refuses). Prints req/s, p50/p99, errors and the ratio incidences / alive.

Usage: .venv/bin/python bench/read.py [--seconds 5] [--rounds 2] [--connections 32]
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
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack import CLI, bench_stack, free_port, start_service

RUN = secrets.token_hex(3)


@dataclass
class Round:
    """What one path's round measured."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    x_cache: dict[str, int] = field(default_factory=dict)


async def _connection(port: int, request: bytes, deadline: float, out: Round) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = (await reader.readuntil(b"\r\n\r\n")).lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 : head.index(b"\r\n", at)]) if at >= 0 else 0
            if length:
                await reader.readexactly(length)
            out.latencies.append(time.perf_counter() - started)
            if not head.startswith(b"http/1.1 200"):
                out.errors += 1
            at = head.find(b"x-cache:")
            if at >= 0:
                value = head[at + 8 : head.index(b"\r\n", at)].strip().decode()
                out.x_cache[value] = out.x_cache.get(value, 0) + 1
    except (OSError, asyncio.IncompleteReadError):
        out.errors += 1
    finally:
        writer.close()


async def _round(port: int, request: bytes, connections: int, seconds: float) -> Round:
    out = Round()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_connection(port, request, deadline, out) for _ in range(connections)))
    out.seconds = time.perf_counter() - started
    return out


def _request(path: str, key: str | None = None, *, gzip: bool = False) -> bytes:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    encoding = "Accept-Encoding: gzip\r\n" if gzip else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}{encoding}\r\n".encode()


def _ledger(incidences: int) -> bytes:
    """One balanced voucher over `incidences` codes that are not in the (empty) chart."""
    rows = [
        f"2026-10-{1 + i % 28:02d},V1,{700000 + i},pago {i},"
        + ("125.50,0" if i % 2 == 0 else "0,125.50")
        for i in range(incidences + incidences % 2)
    ]
    return ("fecha,comprobante,cuenta,glosa,debe,haber\n" + "\n".join(rows) + "\n").encode()


def _publish(base: str, key: str, incidences: int) -> str:
    """A closing with a published snapshot; its incidences path."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as h:
        client = h.post("/api/v1/clients", json={"name": f"bench {RUN}"}).raise_for_status()
        closing = h.post(
            f"/api/v1/clients/{client.json()['id']}/closings", json={"period": "2026-10"}
        ).raise_for_status()
        path = f"/api/v1/closings/{closing.json()['id']}"
        accepted = h.post(f"{path}/ledger", files={"file": ("l.csv", _ledger(incidences))})
        location = accepted.raise_for_status().headers["Location"]
        while (status := h.get(location).json()["status"]) not in ("succeeded", "failed"):
            time.sleep(0.05)
        if status != "succeeded":
            raise SystemExit("the iteration failed")
        first = h.get(f"{path}/incidences").raise_for_status()
        print(
            f"snapshot: {incidences} incidences, {len(first.content):,} B; first read after "
            f"publish: X-Cache {first.headers['X-Cache']}"
        )
    return f"{path}/incidences"


def _summary(name: str, rounds: list[Round]) -> float:
    latencies = sorted(lat for r in rounds for lat in r.latencies)
    seconds = sum(r.seconds for r in rounds)
    rate = len(latencies) / seconds
    p50, p99 = (latencies[int(len(latencies) * q)] * 1000 for q in (0.5, 0.99))
    errors = sum(r.errors for r in rounds)
    x_cache: dict[str, int] = {}
    for r in rounds:
        for value, count in r.x_cache.items():
            x_cache[value] = x_cache.get(value, 0) + count
    shown = f"  X-Cache {x_cache}" if x_cache else ""
    print(
        f"{name:<12} {rate:9,.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
        f"errors {errors}{shown}"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per round and path")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--incidences", type=int, default=100)
    args = parser.parse_args()

    with ExitStack() as stack:
        bench = bench_stack(stack, "read", RUN)
        key = "li_bench_" + RUN + "x" * 24
        port = free_port()
        env = bench.service_env(
            key,
            port,
            # The limiter runs on every request (one Redis round trip) but never refuses.
            RATE_LIMIT_READ="1000000000/60",
            LOG_LEVEL="WARNING",
        )
        start_service(stack, env)
        base = f"http://127.0.0.1:{port}"
        path = _publish(base, key, args.incidences)
        subprocess.run([*CLI, "cache", "warm"], env=env, check=True)
        asyncio.run(_round(port, _request(path, key), args.connections, 1.0))  # warm-up

        alive: list[Round] = []
        reads: list[Round] = []
        for _ in range(args.rounds):
            for rounds, request in ((alive, _request("/alive")), (reads, _request(path, key))):
                rounds.append(asyncio.run(_round(port, request, args.connections, args.seconds)))
        print(
            f"{args.connections} connections, {args.rounds} alternating rounds of "
            f"{args.seconds:g} s per path; load average {os.getloadavg()[0]:.2f}"
        )
        alive_rate = _summary("/alive", alive)
        read_rate = _summary("/incidences", reads)
        print(f"ratio incidences / alive: {read_rate / alive_rate:.2f}x  (target >= 0.70x)")
        stats = httpx.get(
            f"{base}/api/v1/admin/cache/stats", headers={"Authorization": f"Bearer {key}"}
        ).json()
        print(
            f"server cache: hit_rate {stats['hit_rate']}, hits {stats['hits']}, "
            f"misses {stats['misses']}, circuit {stats['circuit']['state']}"
        )


if __name__ == "__main__":
    main()
