"""Thin job functions over app.services."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from app.domain.errors import DomainError
from app.domain.ledger.format import LedgerOptions
from app.memory import MemoryReleaser
from app.resources import Resources
from app.services.iterations import parse_ahead, retention, sweeper
from app.services.iterations import run as processing
from app.services.ops import job_metrics
from app.services.uploads import store as upload_store


async def process_iteration(ctx: dict[str, Any], iteration_id: str) -> str:
    """Run one iteration (idempotent: a job for a finished or taken iteration does nothing)."""
    resources: Resources = ctx["resources"]
    iteration = uuid.UUID(iteration_id)
    started = time.perf_counter()
    try:
        result = await processing.run_iteration(resources, iteration)
    except Exception:  # arq retries it; a job cancelled by shutdown is re-queued, not counted
        await job_metrics.record_job(resources, iteration, None, time.perf_counter() - started)
        raise
    finally:
        # After the publish: the next ledger starts from a small heap, not this one's leftovers.
        memory: MemoryReleaser = ctx["memory"]
        if memory.due():
            await asyncio.to_thread(memory.release)
    await job_metrics.record_job(resources, iteration, result, time.perf_counter() - started)
    return result


async def parse_upload_ahead(
    ctx: dict[str, Any], ledger_id: str, filename: str | None, options: dict[str, Any]
) -> str:
    """Parse an upload while it is still arriving (a head start for its iteration's run)."""
    resources: Resources = ctx["resources"]
    try:
        ledger_options = LedgerOptions(**options)
    except (DomainError, TypeError):  # validated by the API: not from this version of it
        return "skipped: options this worker does not know"
    return await parse_ahead.parse_arriving(
        resources.engine, uuid.UUID(ledger_id), filename, ledger_options
    )


async def sweep_stranded_iterations(ctx: dict[str, Any]) -> int:
    """Re-enqueue iterations whose job was lost (Redis down at upload, worker killed)."""
    resources: Resources = ctx["resources"]
    return await sweeper.sweep(resources)


async def purge_job_results(ctx: dict[str, Any]) -> int:
    """Remove leftover arq job results of this deployment from Redis."""
    resources: Resources = ctx["resources"]
    return await retention.purge_job_results(resources.redis, resources.settings.redis_key_prefix)


async def apply_iteration_retention(ctx: dict[str, Any]) -> int:
    """Keep at most ITERATION_RETENTION full incidence sets per closing."""
    resources: Resources = ctx["resources"]
    return await retention.purge_old_results(
        resources.engine, resources.settings.iteration_retention
    )


async def purge_abandoned_uploads(ctx: dict[str, Any]) -> int:
    """Remove the stored part of uploads whose API process died while receiving them."""
    resources: Resources = ctx["resources"]
    return await upload_store.purge_abandoned(resources.engine)
