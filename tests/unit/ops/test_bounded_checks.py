"""A probe's dependency check answers within its timeout, even when the check it gives up on
takes long to unwind (a connection attempt to a hung server cleaning up after cancellation)."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.services.ops.probes import _bounded


async def _slow_to_unwind(unwound: asyncio.Event) -> None:
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        await asyncio.sleep(0.5)  # cleanup that itself waits
        unwound.set()
        raise


async def test_an_overrun_check_times_out_without_waiting_for_its_cleanup() -> None:
    unwound = asyncio.Event()
    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        await _bounded(_slow_to_unwind(unwound), 0.05)
    assert time.perf_counter() - started < 0.3
    assert not unwound.is_set()
    await asyncio.wait_for(unwound.wait(), timeout=5)  # it was cancelled, and unwound later


async def test_a_check_in_time_gives_its_result_or_its_error() -> None:
    async def answer() -> int:
        return 42

    async def broken() -> int:
        raise ConnectionError("down")

    assert await _bounded(answer(), 1) == 42
    with pytest.raises(ConnectionError):
        await _bounded(broken(), 1)
