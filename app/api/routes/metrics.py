"""GET /metrics: Prometheus text format (not in the OpenAPI schema; never rate limited)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import APIRouter
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from starlette.responses import Response

from app.adapters.redis.heartbeat import live_workers
from app.api.deps import ResourcesDep
from app.metrics import ScrapeCollector, WorkerStatsCollector, exposed
from app.resources import Resources
from app.services.ops import job_metrics
from app.services.ops.probes import queued_iterations

router = APIRouter()

T = TypeVar("T")


async def _bounded(awaitable: Awaitable[T], timeout: float) -> T | None:
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except Exception:
        return None


async def _scrape(resources: Resources) -> CollectorRegistry:
    """What is read at scrape time: queue depth, live workers and the workers' counters."""
    settings = resources.settings
    timeout = settings.probe_timeout_seconds
    depth, workers, stats = await asyncio.gather(
        _bounded(queued_iterations(resources), timeout),
        _bounded(live_workers(resources.redis, settings.redis_key_prefix), timeout),
        _bounded(job_metrics.read(resources.redis, settings.redis_key_prefix), timeout),
    )
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(ScrapeCollector(depth, workers, workers is not None and stats is not None))
    scrape.register(WorkerStatsCollector(stats))
    return scrape


@router.get("/metrics", include_in_schema=False)
async def metrics(resources: ResourcesDep) -> Response:
    # Every name is in the classic character set, so the 0.0.4 text format is exact and every
    # Prometheus version (and promtool) reads it.
    scrape = await _scrape(resources)
    return Response(
        generate_latest(exposed()) + generate_latest(scrape), media_type=CONTENT_TYPE_PLAIN_0_0_4
    )
