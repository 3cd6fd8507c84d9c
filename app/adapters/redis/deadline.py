"""Deadlines for Redis calls that a busy event loop does not trip.

`asyncio.timeout` measures wall time. When the API's event loop is saturated (hundreds of ms
between its turns), a Redis answer that came back in a millisecond is still read too late, the
call "times out", and three such calls open the snapshot cache's circuit: every read then goes
to Postgres, which loads the loop further (bench/load.py saw nine snapshot reads in ten answered
`bypass` that way). Here, when the deadline's own timer runs late, the loop is what is slow, not
Redis: the deadline moves on by that lateness (an answer already in the socket is read on the
next turn), up to a hard cap. Only a deadline that passes while the loop keeps time, or the cap,
expires, as TimeoutError.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

# A timer this late (or later) means the loop, not Redis, is behind.
LATE_SECONDS = 0.01
# Without an explicit cap, a congested loop may stretch a deadline to this many times its length.
CAP_FACTOR = 4


@asynccontextmanager
async def redis_deadline(seconds: float, cap: float | None = None) -> AsyncIterator[None]:
    """Like `asyncio.timeout(seconds)`, but extended while the event loop runs behind, to at
    most `cap` seconds in all (CAP_FACTOR × seconds by default)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + (cap if cap is not None else CAP_FACTOR * seconds)
    async with asyncio.timeout(None) as timeout:
        handle: list[asyncio.TimerHandle] = []

        def due(when: float) -> None:
            now = loop.time()
            late = now - when
            if late >= LATE_SECONDS and now < give_up:
                again = min(now + late, give_up)
                handle[0] = loop.call_at(again, due, again)
            else:
                timeout.reschedule(now)  # expires now: the block is cancelled → TimeoutError

        when = loop.time() + seconds
        handle.append(loop.call_at(when, due, when))
        try:
            yield
        finally:
            handle[0].cancel()
