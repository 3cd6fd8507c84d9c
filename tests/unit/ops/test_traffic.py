"""The traffic /health judges (app/services/ops/traffic.py): differences of counter samples,
latency quantiles as Prometheus interpolates them, and the sliding window."""

from __future__ import annotations

import math

import pytest

from app.metrics import CACHE_LOOKUPS, HTTP_LATENCY, HTTP_REQUESTS
from app.services.ops.traffic import Traffic, TrafficWindow, read_traffic

INF = math.inf


def test_a_difference_subtracts_every_count() -> None:
    later = Traffic(10, 4, 100, 7, ((0.1, 90), (1.0, 99), (INF, 100)))
    earlier = Traffic(4, 1, 60, 2, ((0.1, 55), (1.0, 60), (INF, 60)))
    assert later - earlier == Traffic(6, 3, 40, 5, ((0.1, 35), (1.0, 39), (INF, 40)))


def test_latency_quantiles_interpolate_within_their_bucket() -> None:
    # 20 requests: 10 within 10 ms, 18 within 100 ms, all 20 within 1 s.
    traffic = Traffic(latency=((0.01, 10), (0.1, 18), (1.0, 20), (INF, 20)))
    assert traffic.latency_quantile(0.5) == pytest.approx(0.01)  # rank 10: the first bound
    # rank 19 is the 1st of the 2 requests between 100 ms and 1 s: halfway through it.
    assert traffic.latency_quantile(0.95) == pytest.approx(0.1 + 0.9 * 1 / 2)
    # rank 9 of the first bucket, which starts at 0.
    assert traffic.latency_quantile(0.45) == pytest.approx(0.01 * 9 / 10)
    slow = Traffic(latency=((0.01, 0), (1.0, 1), (INF, 4)))
    assert slow.latency_quantile(0.95) == 1.0  # beyond the last bound: that bound
    assert Traffic(latency=((0.01, 0), (INF, 0))).latency_quantile(0.95) is None
    assert Traffic().latency_quantile(0.95) is None


def test_the_window_covers_at_least_its_length_and_ages_samples_out() -> None:
    route = "/api/v1/test-traffic-window"
    window = TrafficWindow(window_seconds=300, now=900.0)  # a first sample when it is made
    HTTP_REQUESTS.labels("GET", route, "2xx").inc(8)
    HTTP_REQUESTS.labels("GET", route, "5xx").inc(2)
    first = window.update(now=1000.0)
    assert (first.requests, first.errors) == (10, 2)
    HTTP_REQUESTS.labels("GET", route, "5xx").inc(1)
    second = window.update(now=1200.0)
    assert (second.requests, second.errors) == (11, 3)  # since the window was made, at 900
    HTTP_REQUESTS.labels("GET", route, "2xx").inc(4)
    # At 1301, the sample of 1000 is the newest one at least 300 s old: it is the base.
    third = window.update(now=1301.0)
    assert (third.requests, third.errors) == (5, 1)
    fourth = window.update(now=1600.0)  # 1301 is 299 s old: 1200 is the base
    assert (fourth.requests, fourth.errors) == (4, 0)


def test_only_api_routes_count_and_cache_outcomes_are_split() -> None:
    before = read_traffic()
    HTTP_REQUESTS.labels("GET", "/health", "5xx").inc(3)  # a probe: not API traffic
    HTTP_REQUESTS.labels("GET", "/api/v1/clients", "5xx").inc(1)
    HTTP_LATENCY.labels("GET", "/health").observe(9)
    HTTP_LATENCY.labels("GET", "/api/v1/clients").observe(0.004)
    CACHE_LOOKUPS.labels("snapshot", "hit").inc(3)
    CACHE_LOOKUPS.labels("view", "miss").inc(2)
    CACHE_LOOKUPS.labels("view", "bypass").inc(5)  # neither a hit nor a miss
    delta = read_traffic() - before
    assert (delta.requests, delta.errors) == (1, 1)
    assert (delta.cache_hits, delta.cache_misses) == (3, 2)
    assert dict(delta.latency)[0.005] == 1 and dict(delta.latency)[INF] == 1
    assert dict(delta.latency)[0.0025] == 0
