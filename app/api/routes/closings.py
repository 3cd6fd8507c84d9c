"""Closings (SPEC §6): created and listed under a client, read and closed by id."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

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
from app.api.schemas.closings import PERIOD_PATTERN, ClosingIn, ClosingOut, ClosingPatch
from app.services.reviews import close
from app.services.tenancy import closings
from app.services.tenancy.api_keys import Role

# No prefix: the routes live under /clients/{id}/closings and /closings/{id}.
router = APIRouter(tags=["closings"], responses=problem_responses(404))


@router.post(
    "/clients/{client_id}/closings",
    status_code=201,
    response_model=ClosingOut,
    summary="Open a closing",
    description="One closing per client and `period`; a second one for the same month is a 409.",
    responses=problem_responses(400, 403, (409, "The client already has a closing of that period")),
)
async def create_closing(
    client_id: uuid.UUID, body: ClosingIn, actor: AnalystActor, conn: ConnDep
) -> dict[str, Any]:
    return await closings.create_closing(conn, actor, client_id, body.period)


@router.get(
    "/clients/{client_id}/closings",
    response_model=CursorPage[ClosingOut],
    summary="List a client's closings (newest period first)",
    description=f"{LIST_PAGE_DEFAULT} a page unless `limit` says otherwise; pass `next_cursor` "
    "(the last period shown) as `cursor` for the older ones.",
)
async def list_closings(
    client_id: uuid.UUID,
    principal: Viewer,
    conn: ReadConnDep,
    limit: ListLimit = LIST_PAGE_DEFAULT,
    cursor: Annotated[
        str | None, Query(pattern=PERIOD_PATTERN, description="`next_cursor` of the previous page")
    ] = None,
) -> dict[str, Any]:
    return await closings.list_closings(conn, principal.tenant_id, client_id, limit, cursor)


@router.get("/closings/{closing_id}", response_model=ClosingOut, summary="Get a closing")
async def get_closing(
    closing_id: uuid.UUID, principal: Viewer, conn: ReadConnDep
) -> dict[str, Any]:
    return await closings.get_closing(conn, principal.tenant_id, closing_id)


@router.patch(
    "/closings/{closing_id}",
    response_model=ClosingOut,
    summary="Close or reopen a closing",
    description="A closed closing rejects ledger uploads, re-processing and reviews with 409 "
    "until it is reopened. Iterations already queued or running are not cancelled. Closing "
    "is refused while an error incidence of the snapshot is neither resolved nor "
    "acknowledged (409 `close-blocked`, listing `unreviewed_keys`); an admin may force it.",
    responses=problem_responses(
        400, 403, (409, "Error incidences are neither resolved nor acknowledged")
    ),
)
async def update_closing(
    closing_id: uuid.UUID, body: ClosingPatch, actor: AnalystActor, conn: ConnDep
) -> dict[str, Any]:
    if body.force and actor.role != Role.admin.name:
        raise HTTPException(403, "Only an admin may force a close")
    return await close.set_status(conn, actor, closing_id, body.status, body.force)
