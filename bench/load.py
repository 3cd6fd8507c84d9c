"""Load test: a mixed read/write workload against the real service, from 64 connections.

Starts the API (a real uvicorn, `ledger-incidences serve`) and a worker as processes
(bench/stack.py), seeds a client (chart of accounts, document types) with a closing whose ledger
is processed, then for --seconds (default 60) runs --connections keep-alive HTTP/1.1
connections (httpx), each sending one request after another, picked at random by weight:

  reads   incidences (whole snapshot, and a filtered page), the movements of an incidence, the
          iteration history, the client's closings
  writes  reference-data upserts (a classification changes: the client's closings using that
          account are re-processed), new closings, small ledger uploads (to closings of their own)

Rate limits are raised so that nothing is refused. Afterwards it waits (at most
--drain-seconds) for the re-processing it caused, then prints throughput (total and per kind),
p50/p99 latency, counts by status class and errors, and a last `RESULT {json}` line. Exits 1 when
any request got a 5xx or a transport error, or any iteration failed.

Usage: .venv/bin/python bench/load.py [--seconds 60] [--connections 64] [--drain-seconds 60]
BENCH_LOG_LEVEL=INFO keeps the services' logs, among them each request's duration in the server.
Servers: DATABASE_URL / REDIS_URL when set (a fresh database is created on that server and
dropped afterwards), else embedded ones in a temporary DATA_DIR. Traffic goes to loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import secrets
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack import bench_stack, free_port, start_service

RUN = secrets.token_hex(3)
NO_LIMIT = "1000000000/60"
ACCOUNTS = [f"{110100 + n}" for n in range(20)]
UPLOAD_CLOSINGS = 8

# Kind of request → weight (per 100). Reads 82 %, writes 18 %.
WEIGHTS = {
    "incidences": 35,
    "incidences_page": 10,
    "movements": 15,
    "iterations": 12,
    "closings": 10,
    "reference_upsert": 6,
    "new_closing": 6,
    "upload": 6,
}


def _ledger(rng: random.Random, vouchers: int, period: str = "2026-10") -> bytes:
    """Two-line vouchers over the chart's accounts (and one unknown), mostly balanced, with a
    document type column: enough for a dozen kinds of incidence."""
    lines = ["fecha,comprobante,cuenta,glosa,tipo_doc,debe,haber"]
    for n in range(vouchers):
        day = f"{period}-{1 + n % 28:02d}" if n % 50 else "2026-11-02"
        debit = rng.choice([*ACCOUNTS, "999999"] if n % 40 == 0 else ACCOUNTS)
        credit = rng.choice(ACCOUNTS)
        doc = rng.choice(["FAC", "BOL", "XYZ", ""])
        amount = rng.randrange(100, 10**7) / 100
        other = amount + 1 if n % 97 == 0 else amount
        lines.append(f"{day},V{n},{debit},venta {n},{doc},{amount:.2f},0")
        lines.append(f"{day},V{n},{credit},venta {n},{doc},0,{other:.2f}")
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Seed:
    """What the workload reads and writes."""

    client_id: str
    scratch_client_id: str  # new closings go here, so the listed client's closings stay few
    closing_id: str
    upload_closings: list[str]
    keys: list[str]  # incidence keys of the closing's snapshot


async def _wait_succeeded(http: httpx.AsyncClient, location: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while (status := (await http.get(location)).json()["status"]) not in ("succeeded", "failed"):
        if time.monotonic() > deadline:
            raise SystemExit(f"{location} did not finish in {timeout} s")
        await asyncio.sleep(0.1)
    if status != "succeeded":
        raise SystemExit(f"seeding failed: {location} is {status}")


async def _seed(http: httpx.AsyncClient, rng: random.Random) -> Seed:
    client = (await http.post("/api/v1/clients", json={"name": f"load {RUN}"})).json()["id"]
    scratch = (await http.post("/api/v1/clients", json={"name": f"scratch {RUN}"})).json()["id"]
    chart = [
        {
            "code": code,
            "name": f"Cuenta {code}",
            "name_en": f"Account {code}" if n % 3 else None,
            "classification": "current_assets" if n % 4 else None,
        }
        for n, code in enumerate(ACCOUNTS)
    ]
    (await http.put(f"/api/v1/clients/{client}/accounts", json=chart)).raise_for_status()
    doc_types = [{"code": "FAC", "name": "Factura"}, {"code": "BOL", "name": "Boleta"}]
    (await http.put(f"/api/v1/clients/{client}/document-types", json=doc_types)).raise_for_status()
    closings = []
    for n in range(1 + UPLOAD_CLOSINGS):
        created = await http.post(
            f"/api/v1/clients/{client}/closings", json={"period": f"2026-{1 + n:02d}"}
        )
        closings.append(created.raise_for_status().json()["id"])
    main, uploads = closings[0], closings[1:]
    files = {"file": ("ledger.csv", _ledger(rng, 1000))}
    accepted = (await http.post(f"/api/v1/closings/{main}/ledger", files=files)).raise_for_status()
    await _wait_succeeded(http, accepted.headers["Location"])
    snapshot = (await http.get(f"/api/v1/closings/{main}/incidences")).raise_for_status().json()
    keys = [item["key"] for item in snapshot["incidences"] if item["type"] != "ROW_INVALID"]
    print(
        f"seeded: closing with {snapshot['statistics']['movements_total']} movements, "
        f"{len(keys)} incidences; {UPLOAD_CLOSINGS} closings for uploads"
    )
    return Seed(client, scratch, main, uploads, keys)


Request = Callable[[httpx.AsyncClient, random.Random], Awaitable[httpx.Response]]


def _requests(seed: Seed) -> dict[str, Request]:
    """One request of each kind (writes always change something, so they always do work)."""
    closing = f"/api/v1/closings/{seed.closing_id}"
    counter = itertools.count()

    def incidences(h: httpx.AsyncClient, _: random.Random) -> Awaitable[httpx.Response]:
        return h.get(f"{closing}/incidences")

    def incidences_page(h: httpx.AsyncClient, r: random.Random) -> Awaitable[httpx.Response]:
        params = {"severity": r.choice(["error", "warning"]), "limit": 10, "offset": r.randrange(3)}
        return h.get(f"{closing}/incidences", params=params)

    def movements(h: httpx.AsyncClient, r: random.Random) -> Awaitable[httpx.Response]:
        return h.get(f"{closing}/incidences/{r.choice(seed.keys)}/movements", params={"limit": 100})

    def iterations(h: httpx.AsyncClient, _: random.Random) -> Awaitable[httpx.Response]:
        return h.get(f"{closing}/iterations")

    def closings(h: httpx.AsyncClient, _: random.Random) -> Awaitable[httpx.Response]:
        return h.get(f"/api/v1/clients/{seed.client_id}/closings")

    def reference_upsert(h: httpx.AsyncClient, r: random.Random) -> Awaitable[httpx.Response]:
        # A classified account gets another classification: the incidences stay the same, but
        # every closing whose ledger uses it is re-processed (classification_updated).
        code = r.choice([c for n, c in enumerate(ACCOUNTS) if n % 4])
        body = [{"code": code, "name": f"Cuenta {code}", "classification": f"c{next(counter)}"}]
        return h.put(f"/api/v1/clients/{seed.client_id}/accounts", json=body)

    def new_closing(h: httpx.AsyncClient, _: random.Random) -> Awaitable[httpx.Response]:
        n = next(counter)
        period = f"{1000 + n // 12:04d}-{1 + n % 12:02d}"  # unique per client
        return h.post(f"/api/v1/clients/{seed.scratch_client_id}/closings", json={"period": period})

    def upload(h: httpx.AsyncClient, r: random.Random) -> Awaitable[httpx.Response]:
        target = r.choice(seed.upload_closings)
        files = {"file": ("ledger.csv", _ledger(r, 20))}
        return h.post(f"/api/v1/closings/{target}/ledger", files=files)

    return {
        "incidences": incidences,
        "incidences_page": incidences_page,
        "movements": movements,
        "iterations": iterations,
        "closings": closings,
        "reference_upsert": reference_upsert,
        "new_closing": new_closing,
        "upload": upload,
    }


@dataclass
class Tally:
    """Latencies and outcomes by kind of request."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    failures: list[str] = field(default_factory=list)  # the first few, to say what went wrong
    # Latencies of the snapshot reads by X-Cache (hit, miss, bypass): where they were answered
    # from, and what each answer cost.
    x_cache: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )

    def record(self, kind: str, outcome: str, latency: float, detail: str = "") -> None:
        self.latencies[kind].append(latency)
        self.outcomes[kind][outcome] += 1
        if detail and len(self.failures) < 10:
            self.failures.append(f"{kind}: {detail}")


async def _connection(
    http: httpx.AsyncClient, requests: dict[str, Request], deadline: float, tally: Tally, seed: int
) -> None:
    rng = random.Random(seed)
    kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
    while time.perf_counter() < deadline:
        kind = rng.choices(kinds, weights)[0]
        started = time.perf_counter()
        try:
            response = await requests[kind](http, rng)
        except httpx.TransportError as exc:
            tally.record(kind, "transport", time.perf_counter() - started, repr(exc))
            continue
        status = response.status_code
        latency = time.perf_counter() - started
        if "x-cache" in response.headers:
            tally.x_cache[kind][response.headers["x-cache"]].append(latency)
        detail = f"{status} {response.text[:200]}" if status >= 500 else ""
        tally.record(kind, f"{status // 100}xx", latency, detail)


async def _drain(http: httpx.AsyncClient, seed: Seed, timeout: float) -> Counter[str]:
    """Wait (bounded) until the seeded closings have nothing queued or running; their
    iterations by status."""
    deadline = time.monotonic() + timeout
    while True:
        statuses: Counter[str] = Counter()
        for closing in [seed.closing_id, *seed.upload_closings]:
            statuses.update(item["status"] for item in await _history(http, closing))
        if not statuses["queued"] + statuses["running"] or time.monotonic() > deadline:
            return statuses
        await asyncio.sleep(0.5)


async def _history(http: httpx.AsyncClient, closing: str) -> list[dict[str, object]]:
    """Every iteration of the closing, page after page."""
    items: list[dict[str, object]] = []
    params: dict[str, int] = {"limit": 100}
    while True:
        page = (await http.get(f"/api/v1/closings/{closing}/iterations", params=params)).json()
        items += page["items"]
        if page["next_cursor"] is None:
            return items
        params["cursor"] = page["next_cursor"]


def _percentile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * q))] * 1000


async def _run(base: str, key: str, args: argparse.Namespace) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
        seed = await _seed(http, random.Random(1))
        requests = _requests(seed)
        tally = Tally()
        # One client per connection: 64 requests in flight through one httpx pool cost the
        # client ~4x the CPU (its pool bookkeeping), and the client would be what is measured.
        async with contextlib.AsyncExitStack() as clients:
            connections = [
                await clients.enter_async_context(
                    httpx.AsyncClient(
                        base_url=base,
                        headers=headers,
                        timeout=30,
                        limits=httpx.Limits(max_connections=1),
                    )
                )
                for _ in range(args.connections)
            ]
            started = time.perf_counter()
            deadline = started + args.seconds
            await asyncio.gather(
                *(_connection(c, requests, deadline, tally, n) for n, c in enumerate(connections))
            )
            elapsed = time.perf_counter() - started
        iterations = await _drain(http, seed, args.drain_seconds)
        cache = (await http.get("/api/v1/admin/cache/stats")).json()
    return _report(tally, elapsed, iterations, cache, args)


def _report(
    tally: Tally,
    elapsed: float,
    iterations: Counter[str],
    cache: dict[str, object],
    args: argparse.Namespace,
) -> dict[str, object]:
    classes = ("2xx", "3xx", "4xx", "5xx", "transport")
    print(
        f"\n{args.connections} connections, {elapsed:.1f} s, load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'kind':<17}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}  "
        + "".join(f"{c:>10}" for c in classes)
    )
    total: Counter[str] = Counter()
    for kind in [*WEIGHTS, "total"]:
        if kind == "total":
            latencies = [lat for values in tally.latencies.values() for lat in values]
            outcomes = total
        else:
            latencies, outcomes = tally.latencies[kind], tally.outcomes[kind]
            total.update(outcomes)
        if not latencies:
            continue
        print(
            f"{kind:<17}{len(latencies):>9}{len(latencies) / elapsed:>9.1f}"
            f"{_percentile(latencies, 0.5):>9.1f}{_percentile(latencies, 0.99):>9.1f}  "
            + "".join(f"{outcomes[c]:>10}" for c in classes)
        )
    print(
        f"iterations of the seeded closings afterwards: {dict(iterations)}; server cache "
        f"hit rate {cache.get('hit_rate')}"
    )
    for kind, answered in tally.x_cache.items():
        shown = (
            f"{outcome} {len(values)} (p50 {_percentile(values, 0.5):.1f} ms, "
            f"p99 {_percentile(values, 0.99):.1f} ms)"
            for outcome, values in sorted(answered.items())
        )
        print(f"X-Cache of {kind}: {', '.join(shown)}")
    for failure in tally.failures:
        print(f"  failure: {failure}")
    all_latencies = [lat for values in tally.latencies.values() for lat in values]
    return {
        "seconds": round(elapsed, 1),
        "connections": args.connections,
        "requests": sum(total.values()),
        "rps": round(sum(total.values()) / elapsed, 1),
        "p50_ms": round(_percentile(all_latencies, 0.5), 1) if all_latencies else None,
        "p99_ms": round(_percentile(all_latencies, 0.99), 1) if all_latencies else None,
        "status": {c: total[c] for c in classes},
        "by_kind": {kind: sum(tally.outcomes[kind].values()) for kind in WEIGHTS},
        "iterations": dict(iterations),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the load phase")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--drain-seconds", type=float, default=60.0, help="longest wait for re-processing"
    )
    args = parser.parse_args()

    with ExitStack() as stack:
        bench = bench_stack(stack, "load", RUN)
        key = "li_bench_" + RUN + "x" * 24
        port = free_port()
        env = bench.service_env(
            key,
            port,
            RATE_LIMIT_READ=NO_LIMIT,
            RATE_LIMIT_WRITE=NO_LIMIT,
            RATE_LIMIT_UPLOAD=NO_LIMIT,
            RATE_LIMIT_ANON=NO_LIMIT,
            LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        )
        start_service(stack, env)
        result = asyncio.run(_run(f"http://127.0.0.1:{port}", key, args))
    print("RESULT " + json.dumps(result))
    status = result["status"]
    assert isinstance(status, dict) and isinstance(result["iterations"], dict)
    if status["5xx"] or status["transport"] or result["iterations"].get("failed"):
        sys.exit(1)


if __name__ == "__main__":
    main()
