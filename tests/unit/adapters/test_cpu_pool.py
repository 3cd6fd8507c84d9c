"""The CPU pool: small inputs inline, large ones in another process, a bounded queue (Busy past
it), and a fresh pool after a worker process died."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import pytest

from app.adapters.cpu_pool import CpuPool
from app.domain.errors import Busy


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _die() -> None:
    os._exit(3)


@pytest.fixture
async def pool() -> AsyncIterator[CpuPool]:
    pool = CpuPool(workers=1, queue=1, inline_below=100)
    try:
        yield pool
    finally:
        pool.close()


async def test_small_inputs_run_inline_and_large_ones_in_a_process(pool: CpuPool) -> None:
    assert await pool.run(99, _pid_after, 0) == os.getpid()
    assert await pool.run(100, _pid_after, 0) != os.getpid()


async def test_past_the_queue_requests_are_refused_at_once(pool: CpuPool) -> None:
    await pool.run(100, _pid_after, 0)  # the process is up
    running = asyncio.create_task(pool.run(100, _pid_after, 1.0))
    waiting = asyncio.create_task(pool.run(100, _pid_after, 0))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    with pytest.raises(Busy):
        await pool.run(100, _pid_after, 0)
    assert time.monotonic() - started < 0.1
    assert await running == await waiting  # the one process did both


async def test_a_dead_worker_process_costs_one_request(pool: CpuPool) -> None:
    with pytest.raises(Busy):
        await pool.run(100, _die)
    assert await pool.run(100, _pid_after, 0) != os.getpid()


async def test_threads_are_bounded_the_same_way(pool: CpuPool) -> None:
    running = asyncio.create_task(pool.thread(time.sleep, 0.5))
    waiting = asyncio.create_task(pool.thread(time.sleep, 0))
    await asyncio.sleep(0.1)
    with pytest.raises(Busy):
        await pool.thread(time.sleep, 0)
    await asyncio.gather(running, waiting)
    assert await pool.thread(os.getpid) == os.getpid()
