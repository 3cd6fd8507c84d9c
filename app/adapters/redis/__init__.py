"""Redis adapters: keys, the snapshot cache, the rate limiter, worker heartbeats."""

from redis.exceptions import RedisError

# What a Redis call raises when Redis is down, slow or refusing: callers treat any of these as
# "Redis is unavailable" (a cache read goes to Postgres, the limiter fails open).
REDIS_FAILURES = (RedisError, OSError, TimeoutError)
