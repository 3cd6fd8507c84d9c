"""A probe's answer shared by every caller for a second: a flood of probes costs the
dependencies one check per period, however many arrive."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ProbeMemo(Generic[T]):
    """The last computed value, recomputed at most once per `seconds` (concurrent callers
    wait for the one computation in progress)."""

    def __init__(self, seconds: float = 1.0) -> None:
        self.seconds = seconds
        self._lock = asyncio.Lock()
        self._value: tuple[float, T] | None = None

    def clear(self) -> None:
        """Forget the value: the next caller computes it again."""
        self._value = None

    def _fresh(self) -> T | None:
        if self._value is None or time.monotonic() - self._value[0] > self.seconds:
            return None
        return self._value[1]

    async def get(self, compute: Callable[[], Awaitable[T]]) -> T:
        """The memoized value, computed by `compute` when older than the period."""
        value = self._fresh()
        if value is not None:
            return value
        async with self._lock:
            value = self._fresh()
            if value is None:
                value = await compute()
                self._value = (time.monotonic(), value)
            return value
