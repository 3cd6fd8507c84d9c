"""Clients (SPEC §6)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from app.api.deps import AnalystActor, ConnDep, ReadConnDep, Viewer
from app.api.problems import problem_responses
from app.api.schemas import Items
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


@router.get("", response_model=Items[ClientOut], summary="List clients")
async def list_clients(principal: Viewer, conn: ReadConnDep) -> dict[str, Any]:
    return {"items": await clients.list_clients(conn, principal.tenant_id)}


@router.get(
    "/{client_id}",
    response_model=ClientOut,
    summary="Get a client",
    responses=problem_responses(404),
)
async def get_client(client_id: uuid.UUID, principal: Viewer, conn: ReadConnDep) -> dict[str, Any]:
    return await clients.get_client(conn, principal.tenant_id, client_id)
