"""redis_deadline: expires like asyncio.timeout on a loop that keeps time, but not because the
event loop itself ran behind, and never past its cap."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.adapters.redis.deadline import redis_deadline


async def test_expires_on_time_when_the_loop_keeps_time() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        async with redis_deadline(0.05):
            await asyncio.sleep(5)
    assert 0.04 <= loop.time() - started < 0.2


async def test_an_answer_that_came_while_the_loop_was_blocked_is_still_read() -> None:
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()
    # The loop is blocked for 300 ms (other requests' work) from 10 ms on; the answer comes at
    # 20 ms, and is read on the first turn after the block, when 50 ms have long passed.
    loop.call_later(0.01, time.sleep, 0.3)
    loop.call_later(0.02, answer.set_result, "PONG")
    async with redis_deadline(0.05, cap=2.0):
        assert await answer == "PONG"


async def test_a_congested_loop_stretches_the_deadline_no_further_than_the_cap() -> None:
    loop = asyncio.get_running_loop()
    blocking = True

    def block() -> None:  # a loop busy with 50 ms chunks of work, for as long as the test runs
        time.sleep(0.05)
        if blocking:
            loop.call_soon(block)

    loop.call_soon(block)
    started = loop.time()
    try:
        with pytest.raises(TimeoutError):
            async with redis_deadline(0.05, cap=0.5):
                await loop.create_future()  # Redis never answers
    finally:
        blocking = False
    assert 0.45 <= loop.time() - started < 1.0


async def test_nothing_is_left_scheduled_after_an_early_answer() -> None:
    loop = asyncio.get_running_loop()
    async with redis_deadline(0.05):
        await asyncio.sleep(0)
    await asyncio.sleep(0.1)  # a stray timer would cancel this task here
    assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]
    assert loop.is_running()
