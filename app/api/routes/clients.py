"""Clients (SPEC §6)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.api.deps import (
    LIST_PAGE_DEFAULT,
    AnalystActor,
    ConnDep,
    ListLimit,
    ReadConnDep,
    Viewer,
)
from app.api.problems import problem_responses
from app.api.schemas import CursorPage
from app.api.schemas.clients import ClientIn, ClientOut
from app.services.tenancy import clients

router = APIRouter(prefix="/clients", tags=["clients"])


@router.post(
    "",
    status_code=201,
    response_model=ClientOut,
    summary="Create a client",
    responses=problem_responses(400, 403),
)
async def create_client(body: ClientIn, actor: AnalystActor, conn: ConnDep) -> dict[str, Any]:
    return await clients.create_client(conn, actor, body.name, body.tax_id)


@router.get(
    "",
    response_model=CursorPage[ClientOut],
    summary="List clients (oldest first)",
    description=f"{LIST_PAGE_DEFAULT} a page unless `limit` says otherwise; pass `next_cursor` "
    "as `cursor` for the next page.",
    responses=problem_responses(
        (422, "Invalid `limit`, or a `cursor` that is not one of your clients")
    ),
)
async def list_clients(
    principal: Viewer,
    conn: ReadConnDep,
    limit: ListLimit = LIST_PAGE_DEFAULT,
    cursor: Annotated[
        uuid.UUID | None, Query(description="`next_cursor` of the previous page")
    ] = None,
) -> dict[str, Any]:
    return await clients.list_clients(conn, principal.tenant_id, limit, after=cursor)


@router.get(
    "/{client_id}",
    response_model=ClientOut,
    summary="Get a client",
    responses=problem_responses(404),
)
async def get_client(client_id: uuid.UUID, principal: Viewer, conn: ReadConnDep) -> dict[str, Any]:
    return await clients.get_client(conn, principal.tenant_id, client_id)
