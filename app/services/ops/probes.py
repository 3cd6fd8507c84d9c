"""Dependency checks behind /ready and /health, each bounded by its own timeout."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import psutil
import sqlalchemy as sa

from app import __version__
from app.adapters.postgres.tables import iterations
from app.adapters.redis.heartbeat import live_workers
from app.metrics import CACHE_LOOKUPS
from app.migrations import current_revision
from app.resources import Resources

T = TypeVar("T")

# The hit rate is measured over at least this much recent time (older lookups age out).
HIT_RATE_WINDOW_SECONDS = 300.0
_STATUS_SCORE = {"pass": 1.0, "warn": 0.5, "fail": 0.0}


@dataclass(frozen=True)
class Readiness:
    """The outcome of the readiness checks."""

    postgres: str  # ok | down | migration_pending
    redis: str  # ok | down

    @property
    def ready(self) -> bool:
        """True when every dependency is usable."""
        return self.postgres == "ok" and self.redis == "ok"


async def _bounded(awaitable: Awaitable[T], timeout: float) -> T:
    return await asyncio.wait_for(awaitable, timeout)


async def _postgres_state(resources: Resources, head: str | None, timeout: float) -> str:
    try:
        revision = await _bounded(current_revision(resources.engine), timeout)
    except Exception:
        return "down"
    return "ok" if revision == head else "migration_pending"


async def _redis_state(resources: Resources, timeout: float) -> str:
    try:
        await _bounded(resources.redis.ping(), timeout)
    except Exception:
        return "down"
    return "ok"


async def check_readiness(resources: Resources, head: str | None) -> Readiness:
    """Postgres reachable at the migration head, and Redis reachable, checked concurrently."""
    timeout = resources.settings.probe_timeout_seconds
    postgres, redis = await asyncio.gather(
        _postgres_state(resources, head, timeout), _redis_state(resources, timeout)
    )
    return Readiness(postgres=postgres, redis=redis)


class HitRateWindow:
    """Cache hits and misses over a sliding window of samples of the cumulative counters."""

    def __init__(self, window_seconds: float = HIT_RATE_WINDOW_SECONDS) -> None:
        self.window_seconds = window_seconds
        self._samples: deque[tuple[float, float, float]] = deque()

    def update(self, hits: float, misses: float, now: float) -> tuple[float, float]:
        """Record the counters now; returns (hits, misses) since the window's oldest sample."""
        self._samples.append((now, hits, misses))
        cutoff = now - self.window_seconds
        while len(self._samples) > 1 and self._samples[1][0] <= cutoff:
            self._samples.popleft()
        _, first_hits, first_misses = self._samples[0]
        return hits - first_hits, misses - first_misses


def cache_lookup_totals() -> tuple[float, float]:
    """(hits, misses) counted by the snapshot cache in this process, over every kind."""
    hits = misses = 0.0
    for family in CACHE_LOOKUPS.collect():
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            if sample.labels.get("outcome") == "hit":
                hits += sample.value
            elif sample.labels.get("outcome") == "miss":
                misses += sample.value
    return hits, misses


def _check(
    component_type: str,
    status: str,
    value: Any = None,
    unit: str | None = None,
    output: str | None = None,
) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {
        "componentType": component_type,
        "status": status,
        "time": datetime.now(UTC).isoformat(),
    }
    if value is not None:
        entry["observedValue"] = value
    if unit is not None:
        entry["observedUnit"] = unit
    if output:
        entry["output"] = output
    return [entry]


async def _measure(check: Callable[[], Awaitable[T]], timeout: float) -> tuple[T, float] | str:
    """(result, milliseconds), or why it failed: never an exception text (it may name hosts)."""
    started = time.perf_counter()
    try:
        result = await _bounded(check(), timeout)
    except TimeoutError:
        return "timed out"
    except Exception:
        return "unreachable"
    return result, round((time.perf_counter() - started) * 1000, 2)


async def _select_one(resources: Resources) -> None:
    async with resources.engine.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")


async def queued_iterations(resources: Resources) -> int:
    """Iterations waiting to start: the backlog, as Postgres (the source of truth) sees it."""
    async with resources.engine.connect() as conn:
        count = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(iterations)
            .where(iterations.c.status == "queued")
        )
    return int(count or 0)


def _percent(used: float, total: float) -> float:
    return round(used / total * 100, 1) if total else 0.0


async def health_document(resources: Resources, hit_rate: HitRateWindow) -> dict[str, Any]:
    """draft-inadarei-api-health-check document: never carries URLs, paths or secrets."""
    settings = resources.settings
    timeout = settings.probe_timeout_seconds
    data_dir = settings.data_dir if settings.data_dir.exists() else "."
    postgres, redis, workers, depth, disk, memory = await asyncio.gather(
        _measure(lambda: _select_one(resources), timeout),
        _measure(resources.redis.ping, timeout),
        _measure(lambda: live_workers(resources.redis, settings.redis_key_prefix), timeout),
        _measure(lambda: queued_iterations(resources), timeout),
        _measure(lambda: asyncio.to_thread(shutil.disk_usage, data_dir), timeout),
        _measure(lambda: asyncio.to_thread(psutil.virtual_memory), timeout),
    )
    checks: dict[str, list[dict[str, Any]]] = {}
    checks["postgres:responseTime"] = (
        _check("datastore", "fail", output=postgres)
        if isinstance(postgres, str)
        else _check("datastore", "pass", postgres[1], "ms")
    )
    checks["redis:responseTime"] = (
        _check("datastore", "warn", output=redis)
        if isinstance(redis, str)
        else _check("datastore", "pass", redis[1], "ms")
    )
    if isinstance(workers, str):
        checks["workers:count"] = _check("component", "warn", output=f"unknown: Redis {workers}")
    else:
        live = workers[0]
        checks["workers:count"] = _check(
            "component",
            "pass" if live else "warn",
            live,
            output=None if live else "no live worker: uploads will wait in the queue",
        )
    if isinstance(depth, str):
        checks["queue:depth"] = _check("component", "warn", output=f"unknown: Postgres {depth}")
    else:
        backlog = depth[0] > settings.health_queue_warn_depth
        checks["queue:depth"] = _check(
            "component",
            "warn" if backlog else "pass",
            depth[0],
            output=f"more than {settings.health_queue_warn_depth} iterations queued"
            if backlog
            else None,
        )
    checks["cache:hitRate"] = _cache_check(resources, hit_rate)
    checks["disk:utilization"] = _usage_check(
        disk if isinstance(disk, str) else _percent(disk[0].used, disk[0].total),
        settings.health_disk_warn_percent,
    )
    checks["memory:utilization"] = _usage_check(
        memory if isinstance(memory, str) else round(memory[0].percent, 1),
        settings.health_memory_warn_percent,
    )
    statuses = [entry["status"] for values in checks.values() for entry in values]
    status = "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"
    score = 0.0 if status == "fail" else sum(_STATUS_SCORE[s] for s in statuses) / len(statuses)
    return {
        "status": status,
        "releaseId": __version__,
        "serviceId": "ledger-incidences",
        "description": "Pre-computed general-ledger incidences",
        # Extension: 1.0 when every check passes, 0 on fail, warns cost half a check each.
        "score": round(score, 3),
        "checks": checks,
    }


def _cache_check(resources: Resources, hit_rate: HitRateWindow) -> list[dict[str, Any]]:
    settings = resources.settings
    hits, misses = hit_rate.update(*cache_lookup_totals(), time.monotonic())
    reads = hits + misses
    if reads < settings.health_cache_min_reads:
        return _check(
            "component",
            "pass",
            output=f"{int(reads)} cache reads recently: too few to judge the hit rate",
        )
    percent = round(hits / reads * 100, 1)
    low = percent < settings.health_cache_warn_percent
    return _check(
        "component",
        "warn" if low else "pass",
        percent,
        "percent",
        output=f"hit rate under {settings.health_cache_warn_percent}%" if low else None,
    )


def _usage_check(measured: float | str, warn_percent: float) -> list[dict[str, Any]]:
    if isinstance(measured, str):
        return _check("system", "warn", output=measured)
    status = "warn" if measured >= warn_percent else "pass"
    return _check("system", status, measured, "percent")
