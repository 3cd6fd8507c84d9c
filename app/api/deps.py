"""FastAPI dependencies: resources, a database transaction, and the caller's principal."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncConnection

from app.resources import Resources
from app.services.api_keys import Principal, Role, authenticate

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer li_…`")


def get_resources(request: Request) -> Resources:
    """The process's pools, built by the lifespan."""
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_conn(resources: ResourcesDep) -> AsyncIterator[AsyncConnection]:
    """One transaction per request: committed when the route returns, rolled back if it raises."""
    async with resources.engine.begin() as conn:
        yield conn


ConnDep = Annotated[AsyncConnection, Depends(get_conn)]


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
    async with resources.engine.connect() as conn:
        principal = await authenticate(conn, credentials.credentials)
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
