"""Telling an outage apart from a failure: Postgres or Redis could not be reached (stopped,
restarting, failing over, a proxy in between restarting, pool exhausted), or Postgres rolled the
transaction back to break a deadlock, which retrying later cures, as opposed to a request or
code that is wrong, which it does not.

The API answers such errors with a 503 (app/api/unavailable.py); a worker hands its iteration
back to be run again instead of failing it (app/services/iterations/run.py).
"""

from __future__ import annotations

import asyncpg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

# What asyncpg raises for a server that is shutting down, starting up or gone, for a connection
# that was closed under it (PostgresConnectionError covers ConnectionDoesNotExistError and the
# other class 08 errors), or when no connection slot is left. SQLAlchemy wraps most of them in
# a DBAPIError, as its `orig`'s cause.
_POSTGRES_DOWN = (
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.PostgresConnectionError,
    asyncpg.TooManyConnectionsError,
)
_UNREACHABLE = (PoolTimeoutError, RedisConnectionError, RedisTimeoutError, *_POSTGRES_DOWN)


def _closed_under_it(exc: BaseException) -> bool:
    """asyncpg's own error for a connection the server closed (a restart) before this use of it,
    raised as is where the driver is used without SQLAlchemy in between (the COPYs of upload
    blocks and of incidence lines). Its other InterfaceErrors are misuses: bugs."""
    return isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc)


def rolled_back(exc: BaseException) -> bool:
    """True when Postgres rolled the transaction back for a conflict with others (a deadlock
    victim, a serialization failure): the same transaction run again can succeed."""
    cause = exc.orig.__cause__ if isinstance(exc, DBAPIError) and exc.orig is not None else None
    return isinstance(cause, asyncpg.TransactionRollbackError)


def unavailable(exc: BaseException) -> bool:
    """True when `exc` says a backing service could not be reached, not that the request or the
    code is wrong."""
    if isinstance(exc, DBAPIError):
        # connection_invalidated: SQLAlchemy found the connection dead (closed under it).
        cause = exc.orig.__cause__ if exc.orig is not None else None
        return exc.connection_invalidated or isinstance(cause, _POSTGRES_DOWN) or rolled_back(exc)
    if isinstance(exc, _UNREACHABLE) or _closed_under_it(exc):
        return True
    # asyncpg's connect raises the socket's own error: refused, reset, timed out, or (Unix socket
    # of a stopped server) ENOENT, which carries no file name, unlike a file that is missing.
    return isinstance(exc, (ConnectionError, TimeoutError)) or (
        isinstance(exc, FileNotFoundError) and exc.filename is None
    )
