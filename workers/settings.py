"""The arq worker: job functions, cron jobs, and start-up/shutdown of its resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from typing import Any

from arq import cron, func
from arq.worker import Worker

from app.adapters.queue import ResilientWorker
from app.adapters.redis import heartbeat
from app.memory import MemoryReleaser
from app.resources import Resources, arq_redis_settings, create_redis, queue_name
from app.settings import Settings
from workers import tasks

logger = logging.getLogger(__name__)

# A job that runs longer than this is cancelled by arq and retried (the claim makes it safe).
JOB_TIMEOUT_SECONDS = 3600


async def _beat_forever(ctx: dict[str, Any]) -> None:
    resources: Resources = ctx["resources"]
    while True:
        try:
            await heartbeat.beat(
                resources.redis, resources.settings.redis_key_prefix, ctx["worker_id"]
            )
        except Exception as exc:  # Redis away for a moment: the next beat will do
            logger.warning("worker heartbeat failed: %s", type(exc).__name__)
        await asyncio.sleep(heartbeat.HEARTBEAT_SECONDS)


def _cron_name(settings: Settings, name: str) -> str:
    # Cron job ids derive from the name: prefixed, deployments sharing a Redis never collide.
    return f"{settings.redis_key_prefix}:{name}"


def build_worker(settings: Settings, **overrides: Any) -> Worker:
    """An arq Worker for these settings (tests pass burst=True and friends as overrides)."""

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx["resources"] = Resources.build(settings)
        ctx["worker_id"] = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        ctx["memory"] = MemoryReleaser()
        ctx["heartbeat_task"] = asyncio.create_task(_beat_forever(ctx))
        logger.info("worker %s started", ctx["worker_id"])

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        ctx["heartbeat_task"].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ctx["heartbeat_task"]
        resources: Resources = ctx["resources"]
        with contextlib.suppress(Exception):
            await heartbeat.forget(resources.redis, settings.redis_key_prefix, ctx["worker_id"])
        await resources.aclose()
        logger.info("worker %s stopped", ctx["worker_id"])

    options: dict[str, Any] = {
        "functions": [
            tasks.process_iteration,
            # A head start only: never retried (a re-run would find the upload over anyway).
            func(tasks.parse_upload_ahead, max_tries=1),
        ],
        "cron_jobs": [
            cron(
                tasks.sweep_stranded_iterations,
                name=_cron_name(settings, "sweep_stranded_iterations"),
                second={0, 20, 40},
                run_at_startup=True,
                unique=True,
                timeout=60,
            ),
            cron(
                tasks.purge_job_results,
                name=_cron_name(settings, "purge_job_results"),
                minute={7, 37},
                second=0,
                unique=True,
                timeout=300,
            ),
            cron(
                tasks.apply_iteration_retention,
                name=_cron_name(settings, "apply_iteration_retention"),
                minute={22},
                second=0,
                unique=True,
                timeout=1800,
            ),
            cron(
                tasks.purge_abandoned_uploads,
                name=_cron_name(settings, "purge_abandoned_uploads"),
                minute={37},
                second=0,
                unique=True,
                timeout=600,
            ),
        ],
        "redis_settings": arq_redis_settings(settings),
        "queue_name": queue_name(settings),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "max_jobs": settings.worker_max_jobs,
        # arq polls its queue: a short delay keeps an upload's pickup latency low.
        "poll_delay": 0.05,
        "job_timeout": JOB_TIMEOUT_SECONDS,
        # On SIGTERM, let the running job finish for this long before it is cancelled and
        # re-queued by arq; our claim/lease logic makes the re-run safe.
        "job_completion_wait": 60,
        # Results live in Postgres; keeping none in Redis lets a job id be enqueued again once
        # its job finished (a deferred iteration is re-queued under the same id).
        "keep_result": 0,
        "max_tries": 5,
        "health_check_interval": 10,
        **overrides,
    }
    return ResilientWorker(**options)


def run_worker(settings: Settings) -> None:
    """Run a worker until SIGINT/SIGTERM."""
    asyncio.set_event_loop(asyncio.new_event_loop())
    build_worker(settings).run()


async def check_worker_health(settings: Settings) -> bool:
    """True when at least one worker heartbeat is fresh (for container healthchecks)."""
    redis = create_redis(settings)
    try:
        return await heartbeat.live_workers(redis, settings.redis_key_prefix) > 0
    except Exception:
        return False
    finally:
        await redis.aclose()
