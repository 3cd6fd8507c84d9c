"""The checks of /health (draft-inadarei-api-health-check): each measurement judged pass, warn
or fail, and, for every warning or failure, an `output` that says what is wrong and what to do
about it (SPEC §8). `ledger-incidences monitor` shows that output as its recommendation.

Outputs never carry exception texts, URLs or paths: they may name hosts or secrets.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from app.services.ops.job_metrics import THROUGHPUT_MINUTES, Throughput
from app.services.ops.traffic import WINDOW_SECONDS, Traffic

T = TypeVar("T")
# (value, milliseconds it took), or why it could not be measured ("timed out", "unreachable").
Measured = tuple[T, float] | str
Check = list[dict[str, Any]]

START_WORKER = "start one: `ledger-incidences worker`"
_WINDOW = f"the last {WINDOW_SECONDS / 60:g} minutes"


def check(
    component_type: str,
    status: str,
    value: Any = None,
    unit: str | None = None,
    output: str | None = None,
) -> Check:
    """One check entry: a list of one, as the draft has it."""
    entry: dict[str, Any] = {
        "componentType": component_type,
        "status": status,
        "time": datetime.now(UTC).isoformat(),
    }
    if value is not None:
        entry["observedValue"] = value
    if unit is not None:
        entry["observedUnit"] = unit
    if output:
        entry["output"] = output
    return [entry]


def _datastore(measured: Measured[Any], down: str, output: str) -> Check:
    """A datastore's round trip; `down` (the status) and `output` when it could not be made."""
    if isinstance(measured, str):
        return check("datastore", down, output=output.format(measured=measured))
    return check("datastore", "pass", measured[1], "ms")


def postgres(measured: Measured[None]) -> Check:
    return _datastore(
        measured,
        "fail",
        "Postgres {measured}: the API answers 503 until it is back. Check the database server "
        "and DATABASE_URL.",
    )


def redis(measured: Measured[Any]) -> Check:
    return _datastore(
        measured,
        "warn",
        "Redis {measured}: snapshots are read from Postgres and rate limits are not enforced. "
        "Check the Redis server and REDIS_URL.",
    )


def workers(measured: Measured[int]) -> Check:
    if isinstance(measured, str):
        return check("component", "warn", output=f"Unknown: Redis {measured}.")
    live = measured[0]
    if not live:
        return check(
            "component", "warn", 0, output=f"No live worker: iterations wait; {START_WORKER}."
        )
    return check("component", "pass", live)


def throughput(measured: Measured[Throughput]) -> Check:
    """Informational (always pass): succeeded work per minute over every worker."""
    if isinstance(measured, str):
        return check("component", "pass", output=f"Unknown: Redis {measured}.")
    rate = measured[0]
    value = {
        "movements_per_minute": rate.movements_per_minute,
        "iterations_per_minute": rate.iterations_per_minute,
    }
    output = f"succeeded iterations over the last {THROUGHPUT_MINUTES} minutes, all workers"
    return check("component", "pass", value, "per minute", output)


def queue(measured: Measured[int], warn_depth: int) -> Check:
    if isinstance(measured, str):
        return check("component", "warn", output=f"Unknown: Postgres {measured}.")
    depth = measured[0]
    if depth <= warn_depth:
        return check("component", "pass", depth)
    return check(
        "component",
        "warn",
        depth,
        output=f"Backlog: {depth} iterations queued, more than {warn_depth}. Start more "
        "workers (`ledger-incidences worker`) or raise their WORKER_MAX_JOBS.",
    )


def cache(traffic: Traffic, warn_percent: float, min_reads: int) -> Check:
    reads = traffic.cache_hits + traffic.cache_misses
    if reads < min_reads:
        return check(
            "component",
            "pass",
            output=f"{int(reads)} cache reads in {_WINDOW}: too few to judge the hit rate",
        )
    percent = round(traffic.cache_hits / reads * 100, 1)
    if percent >= warn_percent:
        return check("component", "pass", percent, "percent")
    return check(
        "component",
        "warn",
        percent,
        "percent",
        output=f"Hit rate {percent}% is under {warn_percent:g}%: warm the cache with "
        "`ledger-incidences cache warm`.",
    )


def errors(traffic: Traffic, warn_percent: float) -> Check:
    """The share of API requests this process answered 5xx."""
    if not traffic.requests:
        return check("component", "pass", 0.0, "percent", f"no API request in {_WINDOW}")
    percent = round(traffic.errors / traffic.requests * 100, 1)
    if percent <= warn_percent:
        return check("component", "pass", percent, "percent")
    return check(
        "component",
        "warn",
        percent,
        "percent",
        output=f"{int(traffic.errors)} of {int(traffic.requests)} API requests in {_WINDOW} "
        f"answered 5xx ({percent}%, above {warn_percent:g}%): check Postgres and Redis, and "
        "the API's error log (each line carries its request id).",
    )


def latency(traffic: Traffic) -> Check:
    """Informational (always pass): the 95th percentile of API response times."""
    p95 = traffic.latency_quantile(0.95)
    if p95 is None:
        return check("component", "pass", output=f"no API request in {_WINDOW}")
    return check("component", "pass", round(p95 * 1000, 1), "ms", f"p95 over {_WINDOW}")


def usage(what: str, measured: float | str, warn_percent: float, advice: str) -> Check:
    """Disk or memory utilization; `advice` is what to do above `warn_percent`."""
    if isinstance(measured, str):
        return check("system", "warn", output=f"Unknown: measuring {what} {measured}.")
    if measured < warn_percent:
        return check("system", "pass", measured, "percent")
    output = f"{what.capitalize()} {measured}% used (warn at {warn_percent:g}%): {advice}."
    return check("system", "warn", measured, "percent", output)
