"""The audit trail (SPEC §9): a tenant's events for admins, one account's history for viewers.
Read only: the API offers no way to change or delete an entry."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BeforeValidator

from app.api.deps import Admin, ReadConnDep, Viewer
from app.api.problems import problem_responses
from app.api.schemas.audit import AuditPage
from app.services.audit.read import AuditFilters, list_events
from app.services.reference_data.history import account_history

router = APIRouter(tags=["audit"])

# RFC 3339, as `format: date-time` documents it (pydantic alone would also take "0.5" or a
# bare date, which the document does not allow).
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _rfc3339(value: object) -> object:
    if isinstance(value, str) and not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time, e.g. 2026-10-31T23:59:59Z")
    return value


Moment = Annotated[datetime, BeforeValidator(_rfc3339)]
NO_NUL = "^[^\\u0000]*$"  # Postgres text cannot hold NUL
Limit = Annotated[int, Query(ge=1, le=1000, description="Events per page (newest first)")]
Cursor = Annotated[
    str | None,
    Query(pattern="^[0-9]{1,18}$", description="next_cursor of the previous page"),
]


# Ids that do not apply are absent rather than null (the CLI has no key id, reference data no
# closing): a client, or a generator following links, never reads "None" as an id.
@router.get(
    "/audit",
    response_model=AuditPage,
    response_model_exclude_unset=True,
    summary="Who changed what and when, in your tenant",
    responses=problem_responses(400, 403),
)
async def list_audit_events(
    principal: Admin,
    conn: ReadConnDep,
    client_id: uuid.UUID | None = None,
    closing_id: uuid.UUID | None = None,
    actor: Annotated[
        str | None, Query(max_length=200, pattern=NO_NUL, description="The actor's name")
    ] = None,
    action: Annotated[
        str | None, Query(max_length=100, pattern=NO_NUL, description="e.g. `account.updated`")
    ] = None,
    since: Annotated[Moment | None, Query(description="At or after (RFC 3339)")] = None,
    until: Annotated[Moment | None, Query(description="Before (RFC 3339)")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    filters = AuditFilters(client_id, closing_id, actor, action, since, until)
    return await list_events(conn, principal.tenant_id, filters, limit, cursor)


@router.get(
    "/clients/{client_id}/accounts/{code:path}/history",
    response_model=AuditPage,
    response_model_exclude_unset=True,
    summary="Every change of one account of the chart, newest first",
    responses=problem_responses(400, (404, "No such client")),
)
async def get_account_history(
    client_id: uuid.UUID,
    code: Annotated[str, Path(max_length=100, pattern=NO_NUL)],
    principal: Viewer,
    conn: ReadConnDep,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    return await account_history(conn, principal.tenant_id, client_id, code, limit, cursor)
