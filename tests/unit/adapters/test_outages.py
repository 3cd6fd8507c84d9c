"""What counts as an outage (a 503, an iteration run again) rather than a failure."""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError

from app.adapters.outages import rolled_back, unavailable


def _wrapped(cause: Exception) -> DBAPIError:
    """A DBAPIError as SQLAlchemy's asyncpg adapter raises it: the asyncpg error is the cause
    of the adapter's own."""
    adapted = Exception("adapted")
    adapted.__cause__ = cause
    return DBAPIError("SELECT 1", None, adapted)


def test_a_deadlock_victim_is_retried_not_failed() -> None:
    for conflict in (asyncpg.DeadlockDetectedError(), asyncpg.SerializationError()):
        error = _wrapped(conflict)
        assert rolled_back(error) and unavailable(error)


def test_a_wrong_statement_is_a_failure() -> None:
    error = _wrapped(asyncpg.UndefinedColumnError())
    assert not rolled_back(error) and not unavailable(error)
    assert not rolled_back(ValueError("x"))


def test_a_server_that_went_away_is_an_outage_but_no_rollback() -> None:
    error = _wrapped(asyncpg.AdminShutdownError())
    assert unavailable(error) and not rolled_back(error)
