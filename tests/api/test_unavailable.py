"""A request that needs an unreachable Postgres gets a 503 problem+json with Retry-After (the
client may retry), not a 500; errors that are not about reaching a service stay 500s. The same
classification lets a worker retry an iteration instead of failing it."""

from __future__ import annotations

import asyncpg
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app.adapters.outages import unavailable
from app.domain.errors import Conflict
from app.settings import Settings
from tests.conftest import bearer
from tests.helpers import assert_problem
from tests.ops_helpers import DEAD_POSTGRES, app_client


async def test_a_request_needing_a_dead_postgres_is_a_503_problem(settings: Settings) -> None:
    # Nothing listens there: the key's check (and any query) cannot connect.
    async with app_client(settings, database_url=DEAD_POSTGRES) as (_, http):
        response = await http.get("/api/v1/clients", headers=bearer("li_" + "k" * 40))
    body = assert_problem(response, 503)
    assert response.headers["Retry-After"] == "5"
    assert body["type"] == "/problems/service-unavailable"
    assert "pg-secret-pw" not in response.text and "127.0.0.1" not in response.text


def _wrapped(cause: BaseException, *, invalidated: bool = False) -> DBAPIError:
    """A DBAPIError as SQLAlchemy's asyncpg dialect raises it: asyncpg's error as its cause."""
    orig = Exception("adapted")
    orig.__cause__ = cause
    return DBAPIError("SELECT 1", None, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_wrapped(asyncpg.CannotConnectNowError("the database system is starting up")), True),
        (_wrapped(asyncpg.AdminShutdownError("terminating connection")), True),
        (_wrapped(asyncpg.ConnectionDoesNotExistError("closed in the middle of operation")), True),
        (
            InterfaceError(
                "SELECT 1", None, Exception("connection is closed"), connection_invalidated=True
            ),
            True,
        ),
        (PoolTimeoutError("QueuePool limit reached"), True),
        (RedisConnectionError("Connection refused"), True),
        (_wrapped(Exception("connection was closed"), invalidated=True), True),
        (FileNotFoundError(2, "No such file or directory"), True),  # a server's Unix socket
        (ConnectionRefusedError(111, "Connection refused"), True),
        (TimeoutError(), True),
        (_wrapped(asyncpg.UniqueViolationError("duplicate key")), False),
        (FileNotFoundError(2, "No such file or directory", "/tmp/x"), False),  # a file
        (PermissionError(13, "Permission denied", "/tmp/x"), False),
        (ValueError("bug"), False),
        (Conflict("the closing is closed"), False),  # a DomainError: the request's fault
        (_wrapped(asyncpg.InterfaceError("another operation is in progress")), False),  # a bug
        # The driver used directly (a COPY) on a connection the server closed (a restart).
        (asyncpg.InterfaceError("connection is closed"), True),
        (asyncpg.InterfaceError("another operation is in progress"), False),
    ],
)
def test_what_counts_as_a_service_being_unavailable(error: Exception, expected: bool) -> None:
    assert unavailable(error) is expected
