"""Bounded pools for the API's CPU-heavy reads: filtered views of a snapshot, diffs between
iterations, bulk reference-data bodies (worker processes), and drill-down decoding (threads).

Threads would not keep the event loop free for the first kind: orjson, pydantic and `re` hold
the GIL for a whole call, and parsing a 40,000-incidence snapshot (16 MB) is one call of a few
hundred ms, during which the loop could not answer even /alive. So they run in worker
processes, at a lower scheduling priority than the API: a flood of heavy reads slows those
reads, not the rest. Polars releases the GIL while it decodes, so drill-downs use threads.

Each lane is bounded twice: at most `workers` jobs run, and at most `queue` more wait; past
that a request is refused at once with Busy (503 + Retry-After) instead of piling up.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import ParamSpec, TypeVar

from app.domain.errors import Busy

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# Under this many input bytes the work takes about a millisecond: done inline.
INLINE_BELOW_BYTES = 256 * 1024
# Added to the worker processes' nice value: the API's own process goes first.
NICENESS = 10


def _lower_priority() -> None:
    os.nice(NICENESS)


def _processes(workers: int) -> Executor:
    # spawn: forking a process that runs threads and an event loop is not safe.
    return ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_lower_priority
    )


def _threads(workers: int) -> Executor:
    return ThreadPoolExecutor(workers, thread_name_prefix="cpu-pool")


class _Lane:
    """An executor started on first use, with its admission bound."""

    def __init__(self, start: Callable[[int], Executor], workers: int, queue: int) -> None:
        self._start = start
        self.workers = workers
        self.queue = queue
        self._executor: Executor | None = None
        self._slots: asyncio.Semaphore | None = None
        self._admitted = 0

    async def run(self, call: Callable[[], T]) -> T:
        if self._admitted >= self.workers + self.queue:
            raise Busy("The server is busy with other large reads; retry in a moment")
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        self._admitted += 1
        try:
            async with self._slots:
                if self._executor is None:
                    self._executor = self._start(self.workers)
                return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except BrokenProcessPool:
            # A worker process died (killed for memory, say): the next call starts a new pool.
            logger.error("a CPU pool process died; starting a new pool")
            self.close()
            raise Busy("The server could not finish this request; retry in a moment") from None
        finally:
            self._admitted -= 1

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


class CpuPool:
    """Worker processes and threads of one API process for its CPU-heavy work."""

    def __init__(self, workers: int, queue: int, inline_below: int = INLINE_BELOW_BYTES) -> None:
        self.inline_below = inline_below
        self._processes = _Lane(_processes, workers, queue)
        self._threads = _Lane(_threads, workers, queue)

    async def run(
        self, size: int, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`function(*args, **kwargs)` (picklable, GIL-bound work) in a worker process, or
        inline when its input (`size` bytes) is small; Busy when the lane is full or its
        process died."""
        if size < self.inline_below:
            return function(*args, **kwargs)
        return await self._processes.run(functools.partial(function, *args, **kwargs))

    async def thread(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`function(*args, **kwargs)` (work that releases the GIL) in a thread of the pool;
        Busy when the lane is full."""
        return await self._threads.run(functools.partial(function, *args, **kwargs))

    def close(self) -> None:
        """Stop the workers (running jobs are abandoned)."""
        self._processes.close()
        self._threads.close()
