"""Read benchmark: GET /closings/{id}/incidences with a warm cache against GET /alive, same server,
in both representations, and against Starlette's GZipMiddleware compressing per request.

Starts the API (a real uvicorn, `ledger-incidences serve`) and a worker as processes, publishes
a snapshot of --incidences incidences (1,000 by default, about 400 KB of JSON), warms the cache,
then drives each path with 32 keep-alive HTTP/1.1 connections from a minimal asyncio client (so
the client costs little CPU), in alternating rounds: /alive; the snapshot as identity; the
snapshot with `Accept-Encoding: gzip` (its gzip bytes made once, when cached); and the same
gzip read from a second API process where our representations are off and Starlette's
GZipMiddleware (level 6, as ours) compresses every answer. Authenticated, with the rate limiter
on (its limit raised so it never refuses). Prints req/s, p50/p99, errors and the ratios.

Usage: .venv/bin/python bench/read.py [--seconds 5] [--rounds 2] [--connections 32] [--reviews 100]
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

from bench.stack import CLI, bench_stack, free_port, start_service, stop, wait_ready

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


def _publish(base: str, key: str, incidences: int, reviews: int = 0) -> str:
    """A closing with a published snapshot, `reviews` of its incidences acknowledged with a
    note; its incidences path."""
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
        keys = [
            i["key"] for i in h.get(f"{path}/incidences").raise_for_status().json()["incidences"]
        ]
        for key_ in keys[:reviews]:
            note = {"status": "acknowledged", "note": f"ERP rounding, fixed next month ({key_})"}
            h.put(f"{path}/reviews/{key_}", json=note).raise_for_status()
        first = h.get(f"{path}/incidences").raise_for_status()
        print(
            f"snapshot: {incidences} incidences ({min(reviews, len(keys))} acknowledged), "
            f"{len(first.content):,} B; first read after publish: "
            f"X-Cache {first.headers['X-Cache']}"
        )
    return f"{path}/incidences"


def serve_per_request_gzip(port: int) -> None:
    """The API as before compressed representations: every snapshot answer leaves as identity,
    and Starlette's GZipMiddleware compresses it on each request (the child's entry point)."""
    import uvicorn
    from starlette.middleware.gzip import GZipMiddleware
    from starlette.types import ASGIApp, Receive, Scope, Send

    from app.api.middleware.compression import CompressionMiddleware
    from app.domain.snapshot import GZIP_LEVEL
    from app.main import create_app
    from app.settings import get_settings

    app = create_app(get_settings())
    app.user_middleware = [m for m in app.user_middleware if m.cls is not CompressionMiddleware]

    def without_accept_encoding(inner: ASGIApp) -> ASGIApp:
        async def hidden(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                headers = [(k, v) for k, v in scope["headers"] if k != b"accept-encoding"]
                scope = {**scope, "headers": headers}
            await inner(scope, receive, send)

        return hidden

    wrapped = GZipMiddleware(
        without_accept_encoding(app), minimum_size=1024, compresslevel=GZIP_LEVEL
    )
    uvicorn.run(wrapped, host="127.0.0.1", port=port, log_config=None, access_log=False)


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
    parser.add_argument("--incidences", type=int, default=1000)
    parser.add_argument(
        "--reviews", type=int, default=0, help="incidences acknowledged with a note first"
    )
    parser.add_argument("--serve-per-request-gzip", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_per_request_gzip:
        serve_per_request_gzip(args.serve_per_request_gzip)
        return

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
        path = _publish(base, key, args.incidences, args.reviews)
        subprocess.run([*CLI, "cache", "warm"], env=env, check=True)
        other = free_port()
        baseline = subprocess.Popen(
            [sys.executable, __file__, "--serve-per-request-gzip", str(other)], env=env
        )
        stack.callback(stop, [baseline])
        wait_ready(f"http://127.0.0.1:{other}")
        paths = {
            "/alive": (port, _request("/alive")),
            "identity": (port, _request(path, key)),
            "gzip": (port, _request(path, key, gzip=True)),
            "gzip/request": (other, _request(path, key, gzip=True)),
        }
        for target, request in paths.values():  # warm-up: near caches, connections
            asyncio.run(_round(target, request, args.connections, 1.0))

        rounds: dict[str, list[Round]] = {name: [] for name in paths}
        for _ in range(args.rounds):
            for name, (target, request) in paths.items():
                rounds[name].append(
                    asyncio.run(_round(target, request, args.connections, args.seconds))
                )
        print(
            f"{args.connections} connections, {args.rounds} alternating rounds of "
            f"{args.seconds:g} s per path; load average {os.getloadavg()[0]:.2f}"
        )
        rate = {name: _summary(name, rounds[name]) for name in paths}
        print(f"gzip / alive:     {rate['gzip'] / rate['/alive']:.2f}x  (target >= 0.85x)")
        print(f"identity / alive: {rate['identity'] / rate['/alive']:.2f}x  (target >= 0.50x)")
        print(
            f"gzip made once / GZipMiddleware per request: "
            f"{rate['gzip'] / rate['gzip/request']:.2f}x  (target >= 3x)"
        )
        stats = httpx.get(
            f"{base}/api/v1/admin/cache/stats", headers={"Authorization": f"Bearer {key}"}
        ).json()
        print(
            f"server cache: hit_rate {stats['hit_rate']}, hits {stats['hits']}, "
            f"misses {stats['misses']}, circuit {stats['circuit']['state']}"
        )


if __name__ == "__main__":
    main()
