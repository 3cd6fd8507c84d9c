"""Prometheus metrics of the service, in one registry (labels never carry ids: bounded)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

REGISTRY = CollectorRegistry(auto_describe=True)

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


# Set by /metrics at scrape time (NaN when their source did not answer in time).
QUEUE_DEPTH = Gauge(
    "ledger_queue_depth", "Iterations queued in Postgres, not yet started.", registry=REGISTRY
)
LIVE_WORKERS = Gauge("ledger_live_workers", "Workers with a fresh heartbeat.", registry=REGISTRY)
SOURCE_UP = Gauge(
    "ledger_metrics_source_up",
    "1 when the scrape could read this source (postgres, redis), else 0.",
    ["source"],
    registry=REGISTRY,
)
