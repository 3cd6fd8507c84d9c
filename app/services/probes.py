"""Dependency checks behind /ready and /health, each bounded by its own timeout."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import psutil

from app.adapters.redis.heartbeat import live_workers
from app.migrations import current_revision
from app.resources import Resources

T = TypeVar("T")

DISK_WARN_PERCENT = 90.0
MEMORY_WARN_PERCENT = 90.0


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


async def _timed(awaitable: Awaitable[Any], timeout: float) -> float:
    started = time.perf_counter()
    await _bounded(awaitable, timeout)
    return round((time.perf_counter() - started) * 1000, 2)


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


async def health_document(resources: Resources) -> dict[str, Any]:
    """draft-inadarei-api-health-check document: never carries URLs or secrets."""
    settings = resources.settings
    timeout = settings.probe_timeout_seconds
    checks: dict[str, list[dict[str, Any]]] = {}

    postgres_ms, redis_ms = await asyncio.gather(
        _timed(_select_one(resources), timeout),
        _timed(resources.redis.ping(), timeout),
        return_exceptions=True,
    )
    checks["postgres:responseTime"] = (
        _check("datastore", "fail", output="unreachable")
        if isinstance(postgres_ms, BaseException)
        else _check("datastore", "pass", postgres_ms, "ms")
    )
    if isinstance(redis_ms, BaseException):
        checks["redis:responseTime"] = _check("datastore", "warn", output="unreachable")
        checks["workers:count"] = _check("component", "warn", output="unknown: Redis unreachable")
    else:
        checks["redis:responseTime"] = _check("datastore", "pass", redis_ms, "ms")
        workers = await _bounded(live_workers(resources.redis, settings.redis_key_prefix), timeout)
        checks["workers:count"] = _check(
            "component",
            "pass" if workers else "warn",
            workers,
            output=None if workers else "no live worker: uploads will wait in the queue",
        )

    disk = shutil.disk_usage(settings.data_dir if settings.data_dir.exists() else ".")
    disk_percent = round(disk.used / disk.total * 100, 1)
    checks["disk:utilization"] = _check(
        "system", "warn" if disk_percent >= DISK_WARN_PERCENT else "pass", disk_percent, "percent"
    )
    memory_percent = psutil.virtual_memory().percent
    checks["memory:utilization"] = _check(
        "system",
        "warn" if memory_percent >= MEMORY_WARN_PERCENT else "pass",
        memory_percent,
        "percent",
    )

    statuses = {entry["status"] for values in checks.values() for entry in values}
    status = "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"
    return {
        "status": status,
        "serviceId": "ledger-incidences",
        "description": "Pre-computed general-ledger incidences",
        "checks": checks,
    }


async def _select_one(resources: Resources) -> None:
    async with resources.engine.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")
