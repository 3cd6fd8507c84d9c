"""The audit trail's cost on a bulk reference-data PUT: 10,000 accounts upserted with and without
their audit rows, in interleaved runs, through the service function the API route calls.

Each run upserts the chart of a fresh client (10,000 `account.created` rows), then changes every
account's classification (10,000 `account.updated` rows with before/after). "Without" replaces
the audit write by a no-op: the difference is what auditing costs. Goal: with ≤ 1.3× without.

Usage: .venv/bin/python bench/audit.py [--accounts 10000] [--runs 5]
Servers: DATABASE_URL / REDIS_URL when set (a fresh database is created there and dropped
afterwards), else embedded ones in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.migrations import upgrade_to_head
from app.resources import Resources
from app.services.audit.record import Actor
from app.services.reference_data import upsert
from app.services.reference_data.changes import Entry
from app.services.reference_data.upsert import ACCOUNTS, put_reference_data
from app.services.tenancy import api_keys, clients
from app.settings import Settings
from bench.stack import bench_stack


def _chart(size: int, classification: str | None) -> list[Entry]:
    return [
        Entry(
            f"item {n}",
            {"code": f"{n:06d}", "name": f"Account {n}", "classification": classification},
        )
        for n in range(size)
    ]


async def _no_audit(*args: Any) -> None:
    return None


async def _timed(work: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await work()
    return time.perf_counter() - started


async def _run_once(resources: Resources, actor: Actor, size: int) -> float:
    """Seconds for both PUTs (create, then update every account) on a fresh client."""
    async with resources.engine.begin() as conn:
        client = await clients.create_client(conn, actor, f"bench {secrets.token_hex(3)}", None)
    created, updated = _chart(size, None), _chart(size, "current_assets")

    async def both() -> None:
        for entries in (created, updated):
            answer = await put_reference_data(resources, actor, client["id"], ACCOUNTS, entries)
            assert answer["created"] + answer["updated"] == size

    return await _timed(both)


async def _bench(settings: Settings, size: int, runs: int) -> None:
    resources = Resources.build(settings)
    try:
        await upgrade_to_head(resources.engine)
        async with resources.engine.begin() as conn:
            tenant = await api_keys.ensure_tenant(conn, "bench-audit")
        actor = Actor(tenant, "bench", "analyst")
        audited = upsert.record
        times: dict[str, list[float]] = {"with": [], "without": []}
        await _run_once(resources, actor, size)  # warm-up: caches, plans, the pool
        for _ in range(runs):
            for mode in ("with", "without"):
                upsert.record = audited if mode == "with" else _no_audit  # type: ignore[assignment]
                times[mode].append(await _run_once(resources, actor, size))
        upsert.record = audited  # type: ignore[assignment]
    finally:
        await resources.aclose()
    median = {mode: statistics.median(values) for mode, values in times.items()}
    print(f"bulk PUT of {size:,} accounts, created then all updated, {runs} interleaved runs:")
    for mode, values in times.items():
        shown = ", ".join(f"{value:.2f}" for value in values)
        print(f"  {mode:>7} audit: median {median[mode]:.2f} s  ({shown})")
    print(f"  ratio with/without: {median['with'] / median['without']:.2f}x (goal <= 1.3x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with ExitStack() as stack:
        bench = bench_stack(stack, "audit", secrets.token_hex(3))
        settings = Settings(
            database_url=bench.database_url,
            redis_url=bench.redis_url,
            redis_key_prefix=bench.prefix,
        )
        asyncio.run(_bench(settings, args.accounts, args.runs))


if __name__ == "__main__":
    main()
