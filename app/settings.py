"""Service settings, read from the environment (SPEC §8)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


@dataclass(frozen=True)
class RatePolicy:
    """At most `limit` requests in any `window_seconds` window."""

    limit: int
    window_seconds: int

    @classmethod
    def parse(cls, text: str) -> RatePolicy:
        """Parse the `N/W` notation of the settings."""
        try:
            limit_text, window_text = text.split("/")
            policy = cls(int(limit_text), int(window_text))
        except ValueError as exc:
            raise ValueError(f"rate limit {text!r} is not of the form N/W") from exc
        if policy.limit < 1 or policy.window_seconds < 1:
            raise ValueError(f"rate limit {text!r} needs N >= 1 and W >= 1")
        return policy


def usable_cores(at_most: int) -> int:
    """The cores this process may run on (its CPU affinity), at most `at_most`."""
    return max(1, min(len(os.sched_getaffinity(0)), at_most))


# BOOTSTRAP_API_KEY is an admin key chosen by an operator: it must be hard to guess.
MIN_BOOTSTRAP_KEY_LENGTH = 32


class Settings(BaseSettings):
    """Every knob of the service; unset URLs mean "use the embedded servers under DATA_DIR"."""

    # hide_input_in_errors: a refused value (a key, a URL with a password) is never echoed.
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", frozen=True, hide_input_in_errors=True
    )

    database_url: SecretStr | None = None
    redis_url: SecretStr | None = None
    port: int = 8000
    host: str = "127.0.0.1"
    # API processes `serve` runs on that port (uvicorn's and gunicorn's name for it): a Python
    # process computes on one core at a time. Default: the cores this process may use, at most 4.
    web_concurrency: int = Field(default_factory=lambda: usable_cores(4), ge=1, le=64)
    data_dir: Path = Path(".data")
    bootstrap_api_key: SecretStr | None = None
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    # An iteration that would yield more incidences fails (the previous snapshot stays served):
    # the snapshot, its cache entries and every view grow with this count, not with the file.
    max_incidences: int = Field(default=100_000, gt=0)
    trusted_proxies: str = ""
    rate_limit_read: str = "1200/60"
    rate_limit_write: str = "120/60"
    rate_limit_upload: str = "20/60"
    rate_limit_anon: str = "60/60"
    # Prefix of every Redis key and of the arq queue, so several deployments (or test runs)
    # can share one Redis without touching each other's data.
    redis_key_prefix: str = "li"
    log_level: str = "INFO"
    # How long /ready waits for each dependency before calling it down.
    probe_timeout_seconds: float = Field(default=0.5, gt=0, lt=1)
    # Seconds between SIGTERM and closing the listening socket, while /ready answers 503.
    shutdown_drain_seconds: float = Field(default=2.0, ge=0)
    worker_max_jobs: int = Field(default=2, ge=1)
    # A CSV upload is parsed by a worker while it arrives (iterations/parse_ahead.py); off, its
    # iteration parses it once accepted (each parse ahead holds one of a worker's job slots).
    parse_while_uploading: bool = True
    # Postgres connections each API process (and each worker) keeps at most.
    database_pool_size: int = Field(default=20, ge=2, le=200)
    # A running iteration whose worker has not renewed its lease for this long is taken over
    # by another worker (the worker renews it six times per lease).
    iteration_lease_seconds: float = Field(default=30, gt=0)
    # Snapshot cache (app/services/snapshot_cache/repository.py). TTLs per kind of Redis entry: the
    # whole snapshot (also the version floor that refuses stale sets) and filtered views.
    cache_snapshot_ttl_seconds: int = Field(default=3600, ge=60)
    cache_view_ttl_seconds: int = Field(default=600, ge=1)
    # Snapshot bodies (and views) at least this large also get a gzip representation, made
    # once when they are cached, sent as such to clients that accept gzip, and stored in Redis.
    cache_compress_min_bytes: int = Field(default=1024, ge=0)
    # Redis calls of the read path give up after this long (the read then goes to Postgres).
    cache_redis_timeout_seconds: float = Field(default=0.25, gt=0)
    # Circuit breaker: after this many consecutive Redis failures, skip Redis for
    # `cache_breaker_open_seconds`, then let one probe through.
    cache_breaker_failures: int = Field(default=3, ge=1)
    cache_breaker_open_seconds: float = Field(default=5.0, gt=0)
    # Every this many seconds each API process drops cached snapshots older than Postgres's
    # (a publish whose Redis write failed): the bound on that staleness. 0 turns it off.
    cache_reconcile_seconds: float = Field(default=30.0, ge=0)
    # Lease of the one process that reloads a missing snapshot from Postgres.
    cache_fill_lease_seconds: float = Field(default=5.0, gt=0)
    # In-process near cache, kept fresh by pub/sub; an entry is re-checked against Redis once
    # it is this old (the bound on staleness if Redis is partitioned from this process).
    cache_near_max_age_seconds: float = Field(default=5.0, ge=0)
    cache_near_max_bytes: int = Field(default=128 * 1024 * 1024, ge=0)
    # API key → principal cache: a revoked key keeps working for at most this long (0: off).
    auth_cache_ttl_seconds: float = Field(default=5.0, ge=0)
    # /health (SPEC §8): thresholds of its warn states.
    health_queue_warn_depth: int = Field(default=100, ge=0)
    health_cache_warn_percent: float = Field(default=70.0, ge=0, le=100)
    health_cache_min_reads: int = Field(default=100, ge=1)
    health_disk_warn_percent: float = Field(default=90.0, gt=0, le=100)
    health_memory_warn_percent: float = Field(default=90.0, gt=0, le=100)
    # Share of API requests answered 5xx (per API process, last 5 minutes) above which it warns.
    health_error_warn_percent: float = Field(default=5.0, ge=0, le=100)
    # Worker processes of the API for CPU-heavy reads (filtered views, diffs, bulk bodies), and
    # how many such requests may wait for one before the next is refused with 503.
    cpu_pool_processes: int = Field(default=2, ge=1)
    cpu_pool_queue: int = Field(default=16, ge=0)
    # Full incidence sets (result document + drill-down lines) kept per closing; older
    # iterations keep their history row, summary and diff. The served snapshot is always kept.
    iteration_retention: int = Field(default=100, ge=1)

    @field_validator("rate_limit_read", "rate_limit_write", "rate_limit_upload", "rate_limit_anon")
    @classmethod
    def _valid_rate(cls, value: str) -> str:
        RatePolicy.parse(value)
        return value

    @field_validator("bootstrap_api_key")
    @classmethod
    def _long_bootstrap_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_BOOTSTRAP_KEY_LENGTH:
            raise ValueError(
                f"it must have at least {MIN_BOOTSTRAP_KEY_LENGTH} characters; "
                'make one with: python3 -c \'import secrets; print("li_" + '
                "secrets.token_urlsafe(32))'"
            )
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, value: str) -> str:
        for part in _split_csv(value):
            ipaddress.ip_network(part, strict=False)
        return value

    @cached_property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """TRUSTED_PROXIES as parsed networks (comma-separated IPs or CIDRs)."""
        return tuple(
            ipaddress.ip_network(p, strict=False) for p in _split_csv(self.trusted_proxies)
        )

    @property
    def embedded(self) -> bool:
        """True when either server must be the embedded one."""
        return self.database_url is None or self.redis_url is None

    def with_urls(self, database_url: str, redis_url: str) -> Settings:
        """A copy pointing at concrete servers (used once embedded servers are up)."""
        return self.model_copy(
            update={"database_url": SecretStr(database_url), "redis_url": SecretStr(redis_url)}
        )


def _split_csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def get_settings() -> Settings:
    """Build the settings from the environment; call it, never import a module-level instance."""
    return Settings()
