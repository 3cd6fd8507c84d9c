"""A circuit breaker for the snapshot cache's Redis calls: an outage must not cost every read a
timeout."""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    """Closed → open after `failures` consecutive errors; open skips Redis for `open_seconds`;
    then half-open lets one probe through: success closes it, failure opens it again."""

    def __init__(
        self, failures: int, open_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = failures
        self.open_seconds = open_seconds
        self.clock = clock
        self.state = "closed"
        self.failures = 0
        self.opened = 0  # how many times it opened (for stats and tests)
        self._since = 0.0

    @property
    def closed(self) -> bool:
        """True when Redis is trusted."""
        return self.state == "closed"

    def allow(self) -> bool:
        """Whether this call may use Redis (in half-open state: only the one probe)."""
        if self.state == "closed":
            return True
        if self.clock() - self._since < self.open_seconds:
            return False
        # Open long enough (or a probe never reported back): this caller is the probe.
        self.state = "half_open"
        self._since = self.clock()
        return True

    def success(self) -> None:
        """A Redis call worked."""
        self.state = "closed"
        self.failures = 0

    def failure(self) -> None:
        """A Redis call failed or timed out."""
        self.failures += 1
        if self.state == "half_open" or self.failures >= self.threshold:
            if self.state != "open":
                self.opened += 1
            self.state = "open"
            self._since = self.clock()
