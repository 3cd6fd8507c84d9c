"""What this API process served recently, for /health: the snapshot cache's hit rate and the API
requests' error rate and latency, read from the process's own Prometheus counters
(app/metrics.py) over a sliding window. Each API process judges its own traffic."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.samples import Sample

from app.metrics import CACHE_LOOKUPS, HTTP_LATENCY, HTTP_REQUESTS

# Figures cover at least this much recent time (older samples age out).
WINDOW_SECONDS = 300.0
API_ROUTES = "/api/"  # probes, /metrics and the docs are not the traffic being judged


@dataclass(frozen=True)
class Traffic:
    """Counts of this process since it started or, as a difference, over a stretch of time."""

    cache_hits: float = 0.0
    cache_misses: float = 0.0
    requests: float = 0.0  # answered by an API route
    errors: float = 0.0  # of those, answered 5xx
    # (upper bound in seconds, requests answered within it), cumulative as Prometheus buckets.
    latency: tuple[tuple[float, float], ...] = ()

    def __sub__(self, earlier: Traffic) -> Traffic:
        before = dict(earlier.latency)
        return Traffic(
            self.cache_hits - earlier.cache_hits,
            self.cache_misses - earlier.cache_misses,
            self.requests - earlier.requests,
            self.errors - earlier.errors,
            tuple((le, count - before.get(le, 0.0)) for le, count in self.latency),
        )

    def latency_quantile(self, q: float) -> float | None:
        """Seconds within which a fraction `q` of the requests were answered, interpolated
        within its bucket as Prometheus's histogram_quantile does; None without requests."""
        total = self.latency[-1][1] if self.latency else 0.0
        if total <= 0:
            return None
        rank = q * total
        lower, below = 0.0, 0.0
        for le, count in self.latency:
            if count >= rank:
                if math.isinf(le):  # slower than the last bound: that bound is all we know
                    return lower
                return lower + (le - lower) * (rank - below) / (count - below)
            lower, below = le, count
        return lower


def _samples(metric: MetricWrapperBase, suffix: str) -> Iterator[Sample]:
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith(suffix):
                yield sample


def read_traffic() -> Traffic:
    """The counters of this process, now."""
    hits = misses = requests = errors = 0.0
    for sample in _samples(CACHE_LOOKUPS, "_total"):
        outcome = sample.labels.get("outcome")
        hits += sample.value if outcome == "hit" else 0.0
        misses += sample.value if outcome == "miss" else 0.0
    for sample in _samples(HTTP_REQUESTS, "_total"):
        if sample.labels["route"].startswith(API_ROUTES):
            requests += sample.value
            errors += sample.value if sample.labels["status_class"] == "5xx" else 0.0
    buckets: dict[float, float] = {}
    for sample in _samples(HTTP_LATENCY, "_bucket"):
        if sample.labels["route"].startswith(API_ROUTES):
            le = float(sample.labels["le"])
            buckets[le] = buckets.get(le, 0.0) + sample.value
    return Traffic(hits, misses, requests, errors, tuple(sorted(buckets.items())))


class TrafficWindow:
    """The traffic over a sliding window of samples, one taken at each update (and one when the
    window is made, so the first update already covers the time since)."""

    def __init__(self, window_seconds: float = WINDOW_SECONDS, now: float | None = None) -> None:
        self.window_seconds = window_seconds
        start = time.monotonic() if now is None else now
        self._samples: deque[tuple[float, Traffic]] = deque([(start, read_traffic())])

    def update(self, now: float | None = None) -> Traffic:
        """Sample the counters; returns the traffic since the window's oldest sample, the
        newest one at least `window_seconds` old when there is one."""
        now = time.monotonic() if now is None else now
        current = read_traffic()
        self._samples.append((now, current))
        cutoff = now - self.window_seconds
        while len(self._samples) > 1 and self._samples[1][0] <= cutoff:
            self._samples.popleft()
        return current - self._samples[0][1]
