"""A bounded pool of worker processes for the API's CPU-heavy reads: filtered views of a
snapshot, diffs between iterations, bulk reference-data bodies.

Threads would not keep the event loop free: orjson, pydantic and `re` hold the GIL for a whole
call, and parsing a 40,000-incidence snapshot (16 MB) is one call of a few hundred ms, during
which the loop could not answer even /alive. The pool's processes run at a lower scheduling
priority than the API, so a flood of heavy reads slows those reads, not the rest.

Bounded twice: at most `processes` jobs run, and at most `queue` more wait; past that a
request is refused at once with Busy (503 + Retry-After) instead of piling up. Small inputs
are computed inline, where the hop would cost more than the work.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import ParamSpec, TypeVar

from app.domain.errors import Busy

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# Under this many input bytes the work takes about a millisecond: done inline.
INLINE_BELOW_BYTES = 256 * 1024
# Added to the pool's processes' nice value: the API's own process goes first.
NICENESS = 10


def _lower_priority() -> None:
    os.nice(NICENESS)


class CpuPool:
    """Runs functions of picklable arguments in worker processes, started on first use."""

    def __init__(self, processes: int, queue: int, inline_below: int = INLINE_BELOW_BYTES) -> None:
        self.processes = processes
        self.queue = queue
        self.inline_below = inline_below
        self._executor: ProcessPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None
        self._waiting = 0

    async def run(
        self, size: int, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`function(*args, **kwargs)`, in a worker process unless its input (`size` bytes)
        is small; Busy when the queue is full or a worker process died."""
        if size < self.inline_below:
            return function(*args, **kwargs)
        if self._waiting >= self.processes + self.queue:
            raise Busy("The server is busy with other large reads; retry in a moment")
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.processes)
        self._waiting += 1
        try:
            async with self._slots:
                loop = asyncio.get_running_loop()
                call = functools.partial(function, *args, **kwargs)
                return await loop.run_in_executor(self._pool(), call)
        except BrokenProcessPool:
            # A worker died (killed for memory, say): the next call starts a fresh pool.
            logger.error("a CPU pool process died; starting a new pool")
            self.close()
            raise Busy("The server could not finish this request; retry in a moment") from None
        finally:
            self._waiting -= 1

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # spawn: forking a process that runs threads and an event loop is not safe.
            self._executor = ProcessPoolExecutor(
                self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_lower_priority,
            )
        return self._executor

    def close(self) -> None:
        """Stop the worker processes (running jobs are abandoned)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
