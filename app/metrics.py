"""Prometheus metrics of the service, in one registry (labels never carry ids: bounded)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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

JOBS = Counter(
    "ledger_jobs", "Iteration jobs finished, by outcome.", ["outcome"], registry=REGISTRY
)
MOVEMENTS_PROCESSED = Counter(
    "ledger_movements_processed", "Movements run through the rules.", registry=REGISTRY
)
PROCESSING_DURATION = Histogram(
    "ledger_iteration_duration_seconds",
    "Wall time of a succeeded iteration.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge("ledger_queue_depth", "Iterations waiting in the queue.", registry=REGISTRY)
LIVE_WORKERS = Gauge("ledger_live_workers", "Workers with a fresh heartbeat.", registry=REGISTRY)
