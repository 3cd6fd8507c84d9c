"""The snapshot of a closing and the movements behind each incidence (SPEC §6)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query
from starlette.responses import Response

from app.api.deps import ConnDep, Viewer
from app.services import incidences, snapshots
from app.services.closing_reads import check_closing

router = APIRouter(prefix="/closings/{closing_id}", tags=["incidences"])

_CACHE_HEADERS = {"Cache-Control": "private, no-cache"}


def _none_match(if_none_match: str, etag: str) -> bool:
    """Whether If-None-Match matches (RFC 9110 §13.1.2): `*` matches the current snapshot, and
    the comparison is weak, so a W/ tag (as compressing proxies rewrite ours) matches too."""
    tags = {tag.strip() for tag in if_none_match.split(",")}
    return "*" in tags or etag in {tag.removeprefix("W/") for tag in tags}


@router.get(
    "/incidences",
    summary="The closing's snapshot: consolidated incidences and statistics",
    responses={
        200: {"content": {"application/json": {}}},
        304: {"description": "Not modified"},
        404: {"description": "No iteration has succeeded yet"},
    },
)
async def get_incidences(
    closing_id: uuid.UUID,
    principal: Viewer,
    conn: ConnDep,
    type: Annotated[
        str | None, Query(description="incidence type, e.g. ACCOUNT_UNCLASSIFIED")
    ] = None,
    severity: Annotated[Literal["error", "warning"] | None, Query()] = None,
    limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    await check_closing(conn, principal.tenant_id, closing_id)
    _, content_hash, document = await snapshots.current_snapshot(
        conn, principal.tenant_id, closing_id
    )
    query = incidences.SnapshotQuery(type=type, severity=severity, limit=limit, offset=offset)
    etag = query.etag(content_hash)
    headers = {**_CACHE_HEADERS, "ETag": etag}
    if if_none_match is not None and _none_match(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    body = incidences.snapshot_view(document, query)
    return Response(body, media_type="application/json", headers=headers)


@router.get(
    "/incidences/{key:path}/movements",
    summary="The movements behind one incidence, by line (keyset pagination)",
)
async def get_movements(
    closing_id: uuid.UUID,
    key: str,
    principal: Viewer,
    conn: ConnDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    return await incidences.movements_page(
        conn, principal.tenant_id, closing_id, key, limit, cursor
    )
