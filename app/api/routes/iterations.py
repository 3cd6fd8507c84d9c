"""Ledger upload, reprocessing, iteration history and diffs of a closing (SPEC §6)."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from app.api.deps import AnalystActor, CpuPoolDep, ReadConnDep, ResourcesDep, Viewer
from app.api.multipart import receive_ledger
from app.api.problems import problem_responses
from app.api.schemas import Page
from app.api.schemas.iterations import DiffBetween, IterationOut, ReprocessIn
from app.api.state import app_state
from app.services.iterations import history as closing_reads
from app.services.iterations import request as iterations
from app.services.tenancy.closings import check_closing
from app.services.uploads import accept as ledgers
from app.services.uploads.store import StagedFile

router = APIRouter(
    prefix="/closings/{closing_id}",
    tags=["ledgers and iterations"],
    responses=problem_responses(404),
)

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "additionalProperties": False,
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "CSV (UTF-8/BOM/Windows-1252; , ; or tab) "
                            "or XLSX (first sheet)",
                        },
                        "decimal_separator": {
                            "type": "string",
                            "enum": [".", ","],
                            "description": "When absent, detected from the file's amounts "
                            "(the iteration's `parse` says which)",
                        },
                        "column_map": {
                            "type": "string",
                            "description": 'JSON {"field": "Header in the file"}',
                            "example": '{"voucher": "entry_id"}',
                        },
                    },
                },
                "example": {
                    "file": "entry_id,fecha,cuenta,glosa,debe,haber\n"
                    "A-1,2026-10-03,110105,Venta contado,1000,0\n"
                    "A-1,2026-10-03,410101,Venta contado,0,1000\n",
                    "column_map": '{"voucher": "entry_id"}',
                },
            }
        },
    }
}


# Iteration numbers are Postgres integers: a larger one is a 422, not a failed query.
MAX_NUMBER = 2**31 - 1
IterationNumber = Annotated[int, Path(ge=1, le=MAX_NUMBER)]
# Every iteration carries its diff, which lists every new or resolved key (100k+ for a first
# run over a big ledger), so history is paged. The largest page is the retained history
# (ITERATION_RETENTION's default); the default page fills a history screen.
DEFAULT_PAGE, MAX_PAGE = 20, 100

_LOCATION = {
    "Location": {
        "required": True,
        "description": "The iteration's URL",
        "schema": {"type": "string"},
    }
}


def _location(closing_id: uuid.UUID, number: int) -> str:
    return f"/api/v1/closings/{closing_id}/iterations/{number}"


@router.post(
    "/ledger",
    status_code=202,
    response_model=IterationOut,
    summary="Upload the closing's ledger (replaces the previous one) and queue its processing",
    openapi_extra=_UPLOAD_BODY,
    responses={
        202: {"headers": _LOCATION},
        **problem_responses(
            (400, "A malformed multipart body"),
            403,
            (409, "The closing is closed"),
            (413, "Over MAX_UPLOAD_BYTES"),
            (415, "Neither CSV nor XLSX"),
            (
                422,
                "Not multipart with a `file` part, bad options, missing required columns "
                "(`missing_fields`, `header_found`), no movements, or an unreadable file",
            ),
        ),
    },
)
async def upload_ledger(
    closing_id: uuid.UUID,
    request: Request,
    response: Response,
    actor: AnalystActor,
    resources: ResourcesDep,
) -> dict[str, Any]:
    await ledgers.check_can_upload(resources, actor, closing_id)
    stage = StagedFile(resources.engine, closing_id)
    settings = resources.settings
    announce = partial(ledgers.announce_upload, resources)
    ahead = announce if settings.parse_while_uploading else None
    async with receive_ledger(request, settings.max_upload_bytes, stage, ahead) as upload:
        iteration = await ledgers.accept_ledger(resources, actor, closing_id, upload)
    response.headers["Location"] = _location(closing_id, iteration["number"])
    return iteration


@router.post(
    "/reprocess",
    status_code=202,
    response_model=IterationOut,
    summary="Re-run the closing's ledger against the current reference data",
    responses={
        202: {"headers": _LOCATION},
        **problem_responses(400, 403, (409, "The closing is closed, or has no ledger yet")),
    },
)
async def reprocess_closing(
    closing_id: uuid.UUID,
    body: ReprocessIn,
    response: Response,
    actor: AnalystActor,
    resources: ResourcesDep,
) -> dict[str, Any]:
    iteration = await iterations.reprocess(resources, actor, closing_id, body.notes)
    response.headers["Location"] = _location(closing_id, iteration["number"])
    return iteration


@router.get(
    "/iterations",
    response_model=Page[IterationOut],
    summary="Iteration history, newest first (keyset pages)",
)
async def list_iterations(
    closing_id: uuid.UUID,
    principal: Viewer,
    conn: ReadConnDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size")] = DEFAULT_PAGE,
    cursor: Annotated[
        int | None,
        Query(ge=1, le=MAX_NUMBER, description="`next_cursor` of the previous page"),
    ] = None,
) -> Any:
    await check_closing(conn, principal.tenant_id, closing_id)
    return await iterations.list_iterations(conn, closing_id, limit, before=cursor)


@router.get(
    "/iterations/{number}",
    response_model=IterationOut,
    summary="One iteration, with its diff against the previous succeeded one",
)
async def get_iteration(
    closing_id: uuid.UUID, number: IterationNumber, principal: Viewer, conn: ReadConnDep
) -> Response:
    await check_closing(conn, principal.tenant_id, closing_id)
    resource, diff_json = await iterations.get_iteration(conn, closing_id, number)
    # The resource as the response model writes it, and the stored diff spliced in as it is.
    head = IterationOut.model_validate(resource).model_dump_json(exclude={"diff"}).encode()
    body = b"".join((head[:-1], b',"diff":', b"null" if diff_json is None else diff_json, b"}"))
    return Response(body, media_type="application/json")


@router.get(
    "/diff",
    response_model=DiffBetween,
    summary="Diff between two succeeded iterations",
    responses={
        200: {"content": {"application/json": {}}},
        **problem_responses((409, "One of the iterations has not succeeded")),
    },
)
async def get_diff(
    closing_id: uuid.UUID,
    request: Request,
    principal: Viewer,
    conn: ReadConnDep,
    cpu: CpuPoolDep,
    from_: Annotated[int, Query(alias="from", ge=1, le=MAX_NUMBER)],
    to: Annotated[int, Query(ge=1, le=MAX_NUMBER)],
) -> Response:
    await check_closing(conn, principal.tenant_id, closing_id)
    cache = app_state(request.app).diffs
    body = await closing_reads.diff_between(conn, cpu, cache, closing_id, from_, to)
    return Response(body, media_type="application/json")
