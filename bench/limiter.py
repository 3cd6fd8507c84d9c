"""Rate limiter overhead: authenticated read throughput with the limiter on vs off, in one run,
and the same with slowapi's moving-window limiter on Redis for comparison.

Starts three real uvicorn processes of the same app on loopback (our limiter; none; slowapi
instead of ours), then drives GET /api/v1/clients/{id} with one API key over 32 keep-alive
connections, in interleaved rounds so that drift on a shared machine hits every mode alike.
Limits are set far above what the run can reach: this measures the cost of counting, not 429s.

Usage: .venv/bin/python bench/limiter.py [--rounds 5] [--seconds 4] [--connections 32]
Servers: DATABASE_URL / REDIS_URL when set (a fresh database is created on that server and
dropped afterwards), else embedded ones in a temporary DATA_DIR. Needs the `bench` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack import bench_stack, delete_keys, free_port, stop, wait_ready

MODES = ("on", "off", "slowapi")
HUGE = 10_000_000  # per 60 s: never reached, so every request is counted and admitted


# --- the servers -------------------------------------------------------------------------------


def serve(mode: str, port: int) -> None:
    """Run the app in `mode` on loopback (the child process's entry point)."""
    import uvicorn

    from app.api.middleware.rate_limit import RateLimitMiddleware
    from app.main import create_app
    from app.settings import get_settings

    settings = get_settings()
    app = create_app(settings)
    if mode != "on":
        app.user_middleware = [m for m in app.user_middleware if m.cls is not RateLimitMiddleware]
    if mode == "slowapi":
        redis_url = settings.redis_url.get_secret_value() if settings.redis_url else ""
        _add_slowapi(app, redis_url, f"{settings.redis_key_prefix}-slowapi")
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


def _add_slowapi(app: object, redis_url: str, key_prefix: str) -> None:
    """slowapi's moving window on the same Redis, per API key, with its headers on."""
    import slowapi.middleware
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.middleware import SlowAPIASGIMiddleware
    from starlette.requests import Request

    def bench_endpoint() -> None:
        """Stands for every route (see below)."""

    # slowapi looks the handler up in app.routes, and exempts the request when it finds none;
    # FastAPI 0.165 nests included routers (`_IncludedRouter`, no endpoint), so without this
    # slowapi would silently limit nothing. One stand-in handler: the default limit applies.
    slowapi.middleware._find_route_handler = lambda routes, scope: bench_endpoint

    def per_key(request: Request) -> str:
        return hashlib.sha256(request.headers.get("authorization", "").encode()).hexdigest()[:16]

    storage = redis_url.replace("unix://", "redis+unix://", 1)
    limiter = Limiter(
        key_func=per_key,
        default_limits=[f"{HUGE}/minute"],
        storage_uri=storage,
        strategy="moving-window",
        headers_enabled=True,
        key_prefix=key_prefix,
    )
    app.state.limiter = limiter  # type: ignore[attr-defined]
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[attr-defined]
    app.add_middleware(SlowAPIASGIMiddleware)  # type: ignore[attr-defined]


# --- the load ----------------------------------------------------------------------------------


async def _connection(port: int, request: bytes, stop_at: float, statuses: Counter[int]) -> None:
    """One keep-alive connection sending the request back to back until `stop_at`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            statuses[status] += 1
    finally:
        writer.close()


async def _drive(port: int, path: str, key: str, connections: int, seconds: float) -> Counter[int]:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nAccept: application/json\r\n\r\n"
    ).encode()
    statuses: Counter[int] = Counter()
    stop_at = time.perf_counter() + seconds
    await asyncio.gather(
        *(_connection(port, request, stop_at, statuses) for _ in range(connections))
    )
    return statuses


def measure(port: int, path: str, key: str, connections: int, seconds: float) -> float:
    """Requests per second over `seconds`, after a short warm-up; every answer must be 200."""
    asyncio.run(_drive(port, path, key, connections, 0.5))
    started = time.perf_counter()
    statuses = asyncio.run(_drive(port, path, key, connections, seconds))
    elapsed = time.perf_counter() - started
    if set(statuses) != {200}:
        raise SystemExit(f"port {port}: unexpected statuses {dict(statuses)}")
    return statuses[200] / elapsed


# --- the run -----------------------------------------------------------------------------------


def _check_modes(ports: dict[str, int], path: str, key: str) -> None:
    """Each server limits (or not) as it should: headers say who counted the request."""
    for mode, port in ports.items():
        response = httpx.get(
            f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {key}"}
        )
        response.raise_for_status()
        limit = response.headers.get("x-ratelimit-limit")
        expected = {"on": str(HUGE), "off": None, "slowapi": str(HUGE)}[mode]
        if limit != expected:
            raise SystemExit(f"{mode}: X-RateLimit-Limit is {limit!r}, expected {expected!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return

    run = secrets.token_hex(3)
    with ExitStack() as stack:
        bench = bench_stack(stack, "limiter", run)
        redis_url, prefix = bench.redis_url, bench.prefix
        stack.callback(delete_keys, redis_url, f"LIMITS:LIMITER/{prefix}")  # slowapi's keys
        key = "li_bench_" + secrets.token_urlsafe(24)
        env = {
            **os.environ,
            "DATABASE_URL": bench.database_url,
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": prefix,
            "BOOTSTRAP_API_KEY": key,
            "RATE_LIMIT_READ": f"{HUGE}/60",
            "LOG_LEVEL": "WARNING",
        }
        subprocess.run(
            [sys.executable, "-m", "app.cli", "migrate"], env=env, check=True, capture_output=True
        )
        ports = {mode: free_port() for mode in MODES}
        children = [
            subprocess.Popen(
                [sys.executable, __file__, "--serve", mode, "--port", str(port)], env=env
            )
            for mode, port in ports.items()
        ]
        stack.callback(stop, children)
        for port in ports.values():
            wait_ready(f"http://127.0.0.1:{port}")
        created = httpx.post(
            f"http://127.0.0.1:{ports['off']}/api/v1/clients",
            json={"name": "bench"},
            headers={"Authorization": f"Bearer {key}"},
        ).raise_for_status()
        path = f"/api/v1/clients/{created.json()['id']}"
        _check_modes(ports, path, key)

        rates: dict[str, list[float]] = {mode: [] for mode in MODES}
        for number in range(args.rounds):
            order = MODES[number % 3 :] + MODES[: number % 3]  # rotate who goes first
            for mode in order:
                rate = measure(ports[mode], path, key, args.connections, args.seconds)
                rates[mode].append(rate)
                print(f"round {number + 1} {mode:<8} {rate:8.0f} req/s", flush=True)

    # Medians resist one disturbed round; bests show each mode undisturbed (the machine is shared).
    median = {mode: statistics.median(values) for mode, values in rates.items()}
    best = {mode: max(values) for mode, values in rates.items()}
    print(
        f"\nGET /api/v1/clients/{{id}}, {args.connections} connections, "
        f"{args.rounds} rounds x {args.seconds:g} s"
    )
    print(f"  {'':<16} {'median':>14} {'best':>15}")
    for label, mode in (
        ("limiter off", "off"),
        ("limiter on", "on"),
        ("slowapi moving", "slowapi"),
    ):
        print(f"  {label:<16} {median[mode]:8.0f} req/s  {best[mode]:8.0f} req/s", end="")
        if mode != "off":
            print(
                f"   ratio {median[mode] / median['off']:.2f} / {best[mode] / best['off']:.2f}",
                end="",
            )
        print()
    print("  target: limiter on / off >= 0.9")


if __name__ == "__main__":
    main()
