"""Pooled Postgres connections are checked before use only when they may have gone stale.

SQLAlchemy's `pool_pre_ping` checks every checkout, and with asyncpg a check is three round
trips (BEGIN, `;`, ROLLBACK): on a busy API that was more round trips than the requests' own
statements, each one a turn of the event loop. A connection back in the pool for less than
`IDLE_BEFORE_PING_SECONDS` is handed out unchecked. A restart that kills it is still healed:
the first statement that fails on a dead connection makes SQLAlchemy invalidate the whole pool,
so every later checkout reconnects, and that request is answered 503 (app/api/unavailable.py).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine

IDLE_BEFORE_PING_SECONDS = 1.0
_RETURNED_AT = "li_returned_at"


def ping_when_idle(engine: AsyncEngine, idle_seconds: float = IDLE_BEFORE_PING_SECONDS) -> None:
    """Ping a connection at checkout when it has been idle for `idle_seconds` or more; a dead
    one is replaced by a new connection (the pool retries the checkout)."""
    pool = engine.sync_engine.pool
    dialect = engine.dialect

    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    def _check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get(_RETURNED_AT, 0.0) < idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:  # whatever it failed on (reset socket, driver error): replace it
            raise DisconnectionError("pooled connection failed its ping") from exc

    event.listen(pool, "connect", _returned)
    event.listen(pool, "checkin", _returned)
    event.listen(pool, "checkout", _check)
