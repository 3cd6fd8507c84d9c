"""Job throughput (app/services/ops/job_metrics.py): workers count each succeeded job in its
minute's Redis hash, and the rate is read over the last five minutes."""

from __future__ import annotations

import secrets

import pytest
from fastapi import FastAPI

from app.api.state import app_state
from app.services.ops import job_metrics

MINUTE = 29_000_000  # some minute, in unix minutes


async def test_throughput_over_the_last_five_minutes(app: FastAPI) -> None:
    redis = app_state(app).require_resources().redis
    prefix = f"{app_state(app).settings.redis_key_prefix}-throughput-{secrets.token_hex(3)}"
    start = MINUTE * 60

    async def job(outcome: str, movements: int, minute: int, second: int = 0) -> None:
        await job_metrics.add(
            redis, prefix, outcome, 1.5, movements, now=start + minute * 60 + second
        )

    await job("succeeded", 9_999, minute=-5)  # six minutes before the last: out of the window
    await job("succeeded", 1_000, minute=-4, second=59)
    await job("succeeded", 600, minute=-1)
    await job("failed", 50, minute=0)  # only succeeded iterations count
    await job("succeeded", 200, minute=0, second=10)

    # At 30 s into the minute, the window is the 4 minutes before it and half of it: 4.5.
    rate = await job_metrics.throughput(redis, prefix, now=start + 30)
    assert rate.movements_per_minute == pytest.approx(round(1_800 / 4.5, 1))  # 400.0
    assert rate.iterations_per_minute == pytest.approx(round(3 / 4.5, 2))  # 0.67
    later = await job_metrics.throughput(redis, prefix, now=start + 60)  # the next minute
    assert later.movements_per_minute == pytest.approx(800 / 4)  # minute -4 is out now
    assert (await redis.ttl(f"{prefix}:stats:jobs:{MINUTE}")) <= 600
    await redis.delete(*[key async for key in redis.scan_iter(match=f"{prefix}*")])
