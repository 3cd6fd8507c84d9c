"""503 instead of 500 when Postgres or Redis cannot be reached (stopped, restarting, failing over,
pool exhausted): the request was fine, the service is momentarily unable to answer it, and the
client should retry — which a 503 problem+json with Retry-After says, and a 500 does not."""

from __future__ import annotations

import logging

import asyncpg
from fastapi import FastAPI, Request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.responses import Response

from app.adapters.outages import unavailable
from app.api.problems import problem

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


def install_unavailable_handlers(app: FastAPI) -> None:
    """Answer 503 problem+json for the errors `unavailable` recognises; let any other error of
    those types go on to the 500 handler."""

    async def _unavailable(request: Request, exc: Exception) -> Response:
        if not unavailable(exc):
            raise exc
        # No traceback: an outage is not a bug, and would log one per request.
        logger.warning(
            "%s %s answered 503: a backing service is unavailable (%s)",
            request.method,
            request.url.path,
            type(exc).__name__,
        )
        return problem(
            503,
            "A service this request needs is unavailable for a moment; retry shortly.",
            type_slug="service-unavailable",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    for error in (
        DBAPIError,
        PoolTimeoutError,
        RedisConnectionError,
        RedisTimeoutError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,  # a connection closed under the driver used directly (a COPY)
        OSError,  # ConnectionError, TimeoutError and FileNotFoundError are OSErrors
    ):
        app.add_exception_handler(error, _unavailable)
