"""Prometheus metrics of the service, in one registry (labels never carry ids: bounded).

An API of several processes (`serve` with WEB_CONCURRENCY > 1) sets PROMETHEUS_MULTIPROC_DIR
for them: prometheus-client then keeps every process's counts in files there, and `exposed()`
sums them, so /metrics and the cache statistics tell the same whichever process answers.
Values known only at scrape time are rendered then (ScrapeCollector), never kept in a Gauge:
a multi-process gauge would need one series per process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

REGISTRY = CollectorRegistry(auto_describe=True)


def exposed() -> CollectorRegistry:
    """What /metrics shows: the counts of every API process when there are several, else
    REGISTRY (this process's)."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return REGISTRY
    summed = CollectorRegistry()
    multiprocess.MultiProcessCollector(summed)
    return summed


def totals(name: str) -> dict[tuple[str, ...], float]:
    """Label values → count of the counter `name`, as /metrics shows it."""
    return {
        tuple(sample.labels.values()): sample.value
        for family in exposed().collect()
        if family.name == name
        for sample in family.samples
        if sample.name == f"{name}_total"
    }


HTTP_REQUESTS = Counter(
    "ledger_http_requests",
    "HTTP requests answered, by route template and status class.",
    ["method", "route", "status_class"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "ledger_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)

CACHE_LOOKUPS = Counter(
    "ledger_cache_lookups",
    "Snapshot cache lookups by kind of entry and outcome (hit, miss, bypass).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
CACHE_ERRORS = Counter(
    "ledger_cache_errors", "Redis errors met by the snapshot cache.", ["kind"], registry=REGISTRY
)
CACHE_INVALIDATIONS = Counter(
    "ledger_cache_invalidations",
    "Cache invalidations by scope (closing, client, all, publish).",
    ["scope"],
    registry=REGISTRY,
)

RATE_LIMIT_REJECTIONS = Counter(
    "ledger_rate_limit_rejections",
    "Requests refused with 429, by policy.",
    ["policy"],
    registry=REGISTRY,
)
RATE_LIMIT_FAIL_OPEN = Counter(
    "ledger_rate_limit_fail_open",
    "Requests let through because Redis could not be asked.",
    registry=REGISTRY,
)

# Job metrics happen in the worker processes, while /metrics is served by the API: workers add
# their counts to one Redis hash (app/services/ops/job_metrics.py), which /metrics reads at scrape
# time and renders with this collector. Counts are summed over all workers, survive worker
# restarts, and reset only if Redis loses its data (Prometheus treats that as a counter reset).
JOB_OUTCOMES = (
    "succeeded",
    "failed",
    "abandoned",
    "interrupted",  # Postgres or Redis lost mid-run: the iteration is retried
    "deferred",
    "skipped",
    "error",
)
PROCESSING_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class WorkerStatsCollector(Collector):
    """Renders the worker counters read from Redis for one scrape (absent if Redis was not)."""

    def __init__(self, stats: Mapping[str, float] | None) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        """ledger_jobs_total, ledger_movements_processed_total, iteration duration histogram."""
        if self.stats is None:
            return
        stats = self.stats
        jobs = CounterMetricFamily(
            "ledger_jobs", "Iteration jobs finished, by outcome.", labels=["outcome"]
        )
        for outcome in JOB_OUTCOMES:
            jobs.add_metric([outcome], stats.get(f"jobs:{outcome}", 0))
        yield jobs
        yield CounterMetricFamily(
            "ledger_movements_processed",
            "Movements run through the rules by succeeded iterations.",
            value=stats.get("movements", 0),
        )
        buckets = [
            (floatToGoString(le), stats.get(f"duration:le:{le}", 0)) for le in PROCESSING_BUCKETS
        ]
        count = stats.get("duration:count", 0)
        yield HistogramMetricFamily(
            "ledger_iteration_duration_seconds",
            "Wall time of a succeeded iteration.",
            buckets=[*buckets, ("+Inf", count)],
            sum_value=stats.get("duration:sum", 0),
        )


class ScrapeCollector(Collector):
    """The values /metrics reads at scrape time: queue depth, live workers, and whether each
    source answered (NaN for a value whose source did not answer in time)."""

    def __init__(self, queue_depth: int | None, live_workers: int | None, redis_up: bool) -> None:
        self.queue_depth = queue_depth
        self.live_workers = live_workers
        self.redis_up = redis_up

    def collect(self) -> Iterator[Metric]:
        """ledger_queue_depth, ledger_live_workers, ledger_metrics_source_up."""
        nan = float("nan")
        depth = nan if self.queue_depth is None else self.queue_depth
        workers = nan if self.live_workers is None else self.live_workers
        yield GaugeMetricFamily(
            "ledger_queue_depth", "Iterations queued in Postgres, not yet started.", value=depth
        )
        yield GaugeMetricFamily(
            "ledger_live_workers", "Workers with a fresh heartbeat.", value=workers
        )
        up = GaugeMetricFamily(
            "ledger_metrics_source_up",
            "1 when the scrape could read this source (postgres, redis), else 0.",
            labels=["source"],
        )
        up.add_metric(["postgres"], float(self.queue_depth is not None))
        up.add_metric(["redis"], float(self.redis_up))
        yield up
