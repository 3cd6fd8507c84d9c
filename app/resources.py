"""The process-wide connections, built from the settings by the API lifespan and the worker."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import cast

from arq.connections import ArqRedis, RedisSettings
from redis.asyncio import BlockingConnectionPool
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.adapters.postgres.liveness import ping_when_idle
from app.settings import Settings

# Redis connections of one process: enough for its concurrent requests' calls (the limiter
# batches its own), its cache listener and arq; a call finding none free waits for one.
REDIS_MAX_CONNECTIONS = 64
# Seconds before a Redis read (or the wait for a free connection) gives up: a hung Redis.
REDIS_SOCKET_TIMEOUT = 2.0


def database_url(settings: Settings) -> str:
    """DATABASE_URL with the asyncpg driver, whatever scheme the operator wrote."""
    if settings.database_url is None:
        raise RuntimeError("DATABASE_URL is not set and no embedded server was started")
    url = make_url(settings.database_url.get_secret_value())
    if url.drivername in ("postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"):
        url = url.set(drivername="postgresql+asyncpg")
    return url.render_as_string(hide_password=False)


def redis_url(settings: Settings) -> str:
    """REDIS_URL, required once the embedded servers (if any) are up."""
    if settings.redis_url is None:
        raise RuntimeError("REDIS_URL is not set and no embedded server was started")
    return settings.redis_url.get_secret_value()


def create_engine(settings: Settings, *, connections: int | None = None) -> AsyncEngine:
    """The asyncpg-backed engine, at most `connections` (default DATABASE_POOL_SIZE) at once;
    a connection idle in the pool is checked before use, so a restart heals
    (app/adapters/postgres/liveness.py).

    Every connection opened is kept (no overflow): an overflow connection is closed as soon as
    it is given back, so under a load above the pool's size each request paid a new session
    (a backend forked, authentication, every statement prepared again): 11 new sessions a
    second under `bench/load.py`. A request finding every connection busy waits for one."""
    size = connections or settings.database_pool_size
    engine = create_async_engine(
        database_url(settings),
        pool_size=size,
        max_overflow=0,
        pool_recycle=1800,
        # Error messages never carry bound parameters: they include API key hashes.
        hide_parameters=True,
        connect_args={"timeout": 5, "command_timeout": 600},
    )
    ping_when_idle(engine)
    return engine


def create_redis(settings: Settings) -> ArqRedis:
    """One redis-py asyncio client (arq's subclass, so it also enqueues jobs) with short timeouts:
    Redis must never stall a request. It connects lazily, so a Redis outage at startup heals.

    Its pool is redis-py's BlockingConnectionPool on purpose: the default ConnectionPool (5.3+)
    holds one lock while it checks the connection it hands out, which costs an event-loop turn,
    so under load every Redis call of the process waited in one line, one turn each (reads took
    over 250 ms and tripped the cache's circuit; redis/redis-py#3692). This pool checks outside
    its lock.

    The read timeout is only the last resort for a hung Redis: it counts wall time, which a busy
    event loop spends too, so the request paths give up sooner with their own deadlines that
    tell a slow loop from a slow Redis (app/adapters/redis/deadline.py)."""
    pool = BlockingConnectionPool.from_url(
        redis_url(settings),
        max_connections=REDIS_MAX_CONNECTIONS,
        timeout=REDIS_SOCKET_TIMEOUT,  # waiting for a free connection, then ConnectionError
        socket_connect_timeout=0.5,
        socket_timeout=REDIS_SOCKET_TIMEOUT,
        health_check_interval=10,
    )
    client = cast(ArqRedis, ArqRedis.from_pool(pool))  # from_pool is typed as returning Redis
    client.default_queue_name = queue_name(settings)
    return client


def arq_redis_settings(settings: Settings) -> RedisSettings:
    """The same Redis for the arq queue."""
    return RedisSettings.from_dsn(redis_url(settings))


def queue_name(settings: Settings) -> str:
    """The arq queue of this deployment (prefixed like every other key)."""
    return f"{settings.redis_key_prefix}:queue"


@dataclass
class Resources:
    """Everything a request or a job needs to reach the outside world."""

    settings: Settings
    engine: AsyncEngine
    redis: ArqRedis

    @cached_property
    def reader(self) -> AsyncEngine:
        """The engine's pool, for work that only reads: its connections run each statement
        on its own, outside a transaction. Under READ COMMITTED every statement sees its own
        snapshot in a transaction or not, so BEGIN and COMMIT (or ROLLBACK) would only add two
        round trips."""
        return self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @classmethod
    def build(cls, settings: Settings) -> Resources:
        """Create the pools; nothing connects until first use, so startup never blocks."""
        return cls(settings=settings, engine=create_engine(settings), redis=create_redis(settings))

    async def aclose(self) -> None:
        """Close every pool."""
        await self.redis.aclose()
        await self.engine.dispose()
