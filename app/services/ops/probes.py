"""Dependency checks behind /ready and /health, each bounded by its own timeout."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psutil
import sqlalchemy as sa

from app import __version__
from app.adapters.postgres.tables import iterations
from app.adapters.redis.heartbeat import live_workers
from app.migrations import current_revision
from app.resources import Resources
from app.services.ops import health_checks, job_metrics
from app.services.ops.traffic import TrafficWindow

T = TypeVar("T")

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
    """Its result, or TimeoutError once `timeout` seconds are over. A check that overran is
    cancelled but not waited for (asyncio.wait_for waits): a connection attempt to a hung
    dependency may take its time to unwind, and the probe's answer must not."""
    check = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({check}, timeout=timeout)
    finally:
        if not check.done():  # overran, or the probe itself was cancelled
            check.cancel()
            check.add_done_callback(_consume)
    if not done:
        raise TimeoutError
    return check.result()


def _consume(check: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned check's outcome, so that asyncio does not log it as lost."""
    if not check.cancelled():
        check.exception()


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


async def health_document(resources: Resources, traffic: TrafficWindow) -> dict[str, Any]:
    """draft-inadarei-api-health-check document: never carries URLs, paths or secrets."""
    settings = resources.settings
    timeout = settings.probe_timeout_seconds
    data_dir = settings.data_dir if settings.data_dir.exists() else "."
    prefix = settings.redis_key_prefix
    # Nested: gather keeps the types of at most six awaitables. All run concurrently.
    (postgres, redis, depth, disk, memory), (workers, throughput) = await asyncio.gather(
        asyncio.gather(
            _measure(lambda: _select_one(resources), timeout),
            _measure(resources.redis.ping, timeout),
            _measure(lambda: queued_iterations(resources), timeout),
            _measure(lambda: asyncio.to_thread(shutil.disk_usage, data_dir), timeout),
            _measure(lambda: asyncio.to_thread(psutil.virtual_memory), timeout),
        ),
        asyncio.gather(
            _measure(lambda: live_workers(resources.redis, prefix), timeout),
            _measure(lambda: job_metrics.throughput(resources.redis, prefix), timeout),
        ),
    )
    recent = traffic.update()
    checks = {
        "postgres:responseTime": health_checks.postgres(postgres),
        "redis:responseTime": health_checks.redis(redis),
        "workers:count": health_checks.workers(workers),
        "workers:throughput": health_checks.throughput(throughput),
        "queue:depth": health_checks.queue(depth, settings.health_queue_warn_depth),
        "cache:hitRate": health_checks.cache(
            recent, settings.health_cache_warn_percent, settings.health_cache_min_reads
        ),
        "api:errorRate": health_checks.errors(recent, settings.health_error_warn_percent),
        "api:responseTime": health_checks.latency(recent),
        "disk:utilization": health_checks.usage(
            "disk",
            disk if isinstance(disk, str) else _percent(disk[0].used, disk[0].total),
            settings.health_disk_warn_percent,
            "free space under DATA_DIR (old backups: `ledger-incidences backup --keep-days N`) "
            "or grow the volume",
        ),
        "memory:utilization": health_checks.usage(
            "memory",
            memory if isinstance(memory, str) else round(memory[0].percent, 1),
            settings.health_memory_warn_percent,
            "lower WORKER_MAX_JOBS or give the host more memory",
        ),
    }
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
