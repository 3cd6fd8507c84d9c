"""FastAPI dependencies: resources, a database transaction, and the caller's principal."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncConnection

from app.resources import Resources
from app.services.snapshot_cache.repository import SnapshotRepository
from app.services.tenancy.api_keys import Principal, Role, authenticate, hash_key

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer li_…`")


async def get_resources(request: Request) -> Resources:
    """The process's pools, built by the lifespan (async: FastAPI would run a plain function
    in its thread pool, a thread hop per request)."""
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_snapshots(request: Request) -> SnapshotRepository:
    """The process's Redis-first snapshot repository, built by the lifespan."""
    repository: SnapshotRepository = request.app.state.snapshots
    return repository


SnapshotsDep = Annotated[SnapshotRepository, Depends(get_snapshots)]


async def get_conn(resources: ResourcesDep) -> AsyncIterator[AsyncConnection]:
    """One transaction per request: committed when the route returns, rolled back if it raises."""
    async with resources.engine.begin() as conn:
        yield conn


# scope="function": the transaction ends when the route returns, before the response is sent.
# With FastAPI's default ("request") it would commit only after the client had its 201: a
# client could miss its own write, and a failed commit (Postgres gone) would lose a write the
# client was told had succeeded.
ConnDep = Annotated[AsyncConnection, Depends(get_conn, scope="function")]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


class PrincipalCache:
    """Key hash → principal for `ttl` seconds, so a hot read path does no Postgres query.

    Only valid keys are cached (made-up keys cannot fill it), and an entry is dropped after
    `ttl`: a key revoked in Postgres stops working within AUTH_CACHE_TTL_SECONDS (default 5).
    """

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()

    def get(self, digest: bytes) -> Principal | None:
        """The cached principal of a key hash, unless expired."""
        found = self._entries.get(digest)
        if found is None:
            return None
        if time.monotonic() - found[0] >= self.ttl:
            del self._entries[digest]
            return None
        return found[1]

    def put(self, digest: bytes, principal: Principal) -> None:
        """Remember a key just authenticated against Postgres."""
        if self.ttl <= 0:
            return
        self._entries[digest] = (time.monotonic(), principal)
        self._entries.move_to_end(digest)
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


def _principal_cache(request: Request, resources: Resources) -> PrincipalCache:
    cache: PrincipalCache | None = getattr(request.app.state, "principal_cache", None)
    if cache is None:
        cache = PrincipalCache(resources.settings.auth_cache_ttl_seconds)
        request.app.state.principal_cache = cache
    return cache


async def get_principal(
    request: Request,
    resources: ResourcesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The authenticated caller, or 401."""
    if credentials is None:
        raise _unauthorized("Missing API key: send `Authorization: Bearer <key>`")
    cache = _principal_cache(request, resources)
    digest = hash_key(credentials.credentials)
    principal = cache.get(digest)
    if principal is not None:
        request.state.principal = principal
        return principal
    async with resources.engine.connect() as conn:
        principal = await authenticate(conn, credentials.credentials)
    if principal is not None:
        cache.put(digest, principal)
    # Tell the rate limiter whether this key is live, so its next request counts against the
    # key's own limit, or (invalid, revoked) against its IP's anonymous one.
    known_keys = getattr(request.app.state, "known_keys", None)
    if known_keys is not None:
        known_keys.remember(digest, principal.key_id if principal else None)
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


Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Analyst = Annotated[Principal, Depends(require(Role.analyst))]
Admin = Annotated[Principal, Depends(require(Role.admin))]
