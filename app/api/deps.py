"""FastAPI dependencies: resources, a database transaction, and the caller's principal."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.cpu_pool import CpuPool
from app.api.state import app_state
from app.resources import Resources
from app.services.audit.record import Actor
from app.services.snapshot_cache.repository import SnapshotRepository
from app.services.tenancy.api_keys import Principal, Role, authenticate, hash_key

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer li_…`")


async def get_resources(request: Request) -> Resources:
    """The process's pools, built by the lifespan (async: FastAPI would run a plain function
    in its thread pool, a thread hop per request)."""
    return app_state(request.app).require_resources()


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_snapshots(request: Request) -> SnapshotRepository:
    """The process's Redis-first snapshot repository, built by the lifespan."""
    repository = app_state(request.app).snapshots
    if repository is None:
        raise RuntimeError("the application's lifespan has not started")
    return repository


SnapshotsDep = Annotated[SnapshotRepository, Depends(get_snapshots)]


async def get_cpu_pool(request: Request) -> CpuPool:
    """The process's pool for CPU-heavy work (app/adapters/cpu_pool.py)."""
    return app_state(request.app).cpu


CpuPoolDep = Annotated[CpuPool, Depends(get_cpu_pool)]


async def get_conn(resources: ResourcesDep) -> AsyncIterator[AsyncConnection]:
    """One transaction per request: committed when the route returns, rolled back if it raises."""
    async with resources.engine.begin() as conn:
        yield conn


# scope="function": the transaction ends when the route returns, before the response is sent.
# With FastAPI's default ("request") it would commit only after the client had its 201: a
# client could miss its own write, and a failed commit (Postgres gone) would lose a write the
# client was told had succeeded.
ConnDep = Annotated[AsyncConnection, Depends(get_conn, scope="function")]


async def get_read_conn(resources: ResourcesDep) -> AsyncIterator[AsyncConnection]:
    """A connection outside any transaction, for routes that only read (Resources.reader)."""
    async with resources.reader.connect() as conn:
        yield conn


ReadConnDep = Annotated[AsyncConnection, Depends(get_read_conn, scope="function")]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


async def get_principal(
    request: Request,
    resources: ResourcesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The authenticated caller, or 401."""
    if credentials is None:
        raise _unauthorized("Missing API key: send `Authorization: Bearer <key>`")
    state = app_state(request.app)
    digest = hash_key(credentials.credentials)
    principal = state.principals.get(digest)
    if principal is not None:
        request.state.principal = principal
        return principal
    async with resources.reader.connect() as conn:
        principal = await authenticate(conn, credentials.credentials)
    if principal is not None:
        state.principals.put(digest, principal)
    # Tell the rate limiter whether this key is live, so its next request counts against the
    # key's own limit, or (invalid, revoked) against its IP's anonymous one.
    state.known_keys.remember(digest, principal.key_id if principal else None)
    if principal is None:
        raise _unauthorized("Invalid or revoked API key")
    request.state.principal = principal
    return principal


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets through callers with at least `role`, else 403."""

    async def _check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role < role:
            raise HTTPException(
                403,
                f"This operation needs the {role.name} role (your key has {principal.role.name})",
            )
        return principal

    return _check


def acting(role: Role) -> Callable[..., Awaitable[Actor]]:
    """A dependency: the caller (with at least `role`) as the actor of the changes it makes,
    for the audit trail: the key, its tenant and the request's id."""
    allowed = require(role)

    # Depends() as a default, not in an annotation: with postponed annotations FastAPI would
    # look `allowed` up among the module's globals.
    async def _actor(request: Request, principal: Principal = Depends(allowed)) -> Actor:  # noqa: B008
        request_id = getattr(request.state, "request_id", None)
        role_name = principal.role.name
        return Actor(
            principal.tenant_id, principal.key_name, role_name, principal.key_id, request_id
        )

    return _actor


Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Analyst = Annotated[Principal, Depends(require(Role.analyst))]
Admin = Annotated[Principal, Depends(require(Role.admin))]
AnalystActor = Annotated[Actor, Depends(acting(Role.analyst))]
AdminActor = Annotated[Actor, Depends(acting(Role.admin))]


# Clients and closings come a page at a time: a tenant may hold any number of them.
LIST_PAGE_DEFAULT, LIST_PAGE_MAX = 100, 500
ListLimit = Annotated[
    int, Query(ge=1, le=LIST_PAGE_MAX, description=f"Page size (at most {LIST_PAGE_MAX})")
]
