"""The audit trail (SPEC §9): a tenant's events for admins, one account's history for viewers.
Read only: the API offers no way to change or delete an entry."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from app.api.deps import Admin, ConnDep, Viewer
from app.api.problems import problem_responses
from app.api.schemas.audit import AuditPage
from app.services.audit.read import AuditFilters, list_events
from app.services.reference_data.history import account_history

router = APIRouter(tags=["audit"])

Limit = Annotated[int, Query(ge=1, le=1000, description="Events per page (newest first)")]
Cursor = Annotated[str | None, Query(max_length=20, description="next_cursor of the last page")]


@router.get(
    "/audit",
    response_model=AuditPage,
    summary="Who changed what and when, in your tenant",
    responses=problem_responses(400, 403),
)
async def list_audit_events(
    principal: Admin,
    conn: ConnDep,
    client_id: uuid.UUID | None = None,
    closing_id: uuid.UUID | None = None,
    actor: Annotated[str | None, Query(max_length=200, description="The actor's name")] = None,
    action: Annotated[
        str | None, Query(max_length=100, description="e.g. `account.updated`")
    ] = None,
    since: Annotated[datetime | None, Query(description="At or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="Before (ISO 8601)")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    filters = AuditFilters(client_id, closing_id, actor, action, since, until)
    return await list_events(conn, principal.tenant_id, filters, limit, cursor)


@router.get(
    "/clients/{client_id}/accounts/{code}/history",
    response_model=AuditPage,
    summary="Every change of one account of the chart, newest first",
    responses=problem_responses(400, (404, "No such client")),
)
async def get_account_history(
    client_id: uuid.UUID,
    code: Annotated[str, Path(max_length=100)],
    principal: Viewer,
    conn: ConnDep,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    return await account_history(conn, principal.tenant_id, client_id, code, limit, cursor)
