"""A client's chart of accounts and document types (SPEC §6): JSON or CSV bulk upserts, listings."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError

from app.adapters.cpu_pool import CpuPool
from app.api.bulk import read_csv, read_json
from app.api.deps import AnalystActor, CpuPoolDep, ReadConnDep, ResourcesDep, Viewer
from app.api.middleware.body_limit import BULK_BODY_BYTES
from app.api.problems import problem_responses
from app.api.schemas import Items, StrictModel
from app.api.schemas.reference_data import (
    AccountIn,
    AccountOut,
    DocumentTypeIn,
    DocumentTypeOut,
    UpsertResult,
)
from app.domain.errors import InvalidInput
from app.services.reference_data import upsert as reference_data
from app.services.reference_data.changes import MAX_ITEMS, Entry
from app.services.reference_data.upsert import ACCOUNTS, DOCUMENT_TYPES, Kind

router = APIRouter(
    prefix="/clients", tags=["reference data"], responses=problem_responses((404, "No such client"))
)

_CSV_TYPES = {"text/csv", "application/csv", "text/tab-separated-values", "text/plain"}

_COLUMN_MAP = 'CSV only: JSON object `{"field": "Header in the file"}` for other headers'
AccountsColumnMap = Annotated[
    str | None, Query(description=_COLUMN_MAP, examples=['{"classification": "type"}'])
]
DocumentTypesColumnMap = Annotated[
    str | None, Query(description=_COLUMN_MAP, examples=['{"name": "descripcion_larga"}'])
]


def _aliases(kind: Kind) -> str:
    return "\n".join(
        f"- `{field}`: {', '.join(f'`{a}`' for a in names)}"
        for field, names in kind.aliases.items()
    )


def _description(kind: Kind, what: str, rules: str) -> str:
    return (
        f"Bulk upsert of the client's {what}: codes not in the body are kept.\n\n"
        "Body: a JSON array (`application/json`) or CSV (`text/csv`: UTF-8 with or without BOM "
        "or Windows-1252; delimiter `,` `;` or tab, detected from the header line), at most "
        f"{BULK_BODY_BYTES // 2**20} MiB (else 413). CSV headers are matched ignoring case, "
        "accents and surrounding spaces (inner spaces and `-` read as `_`); other columns are "
        "ignored; `column_map` names any other header. Aliases, the first present wins:\n\n"
        f"{_aliases(kind)}\n\n"
        f"{rules}\n\n"
        f"An empty code or name, a repeated code or more than {MAX_ITEMS} rows is a 422 "
        "naming the rows (`item i` of the array, 0-based, or `line n` of the CSV, the header "
        "being line 1); nothing is stored then.\n\n"
        "`created` counts new codes and `updated` existing codes whose values changed; rows "
        "sent unchanged count in neither. `iterations` are the re-processing runs queued (or "
        "merged into an already queued one) for the client's open closings whose ledger uses "
        "a created or changed code."
    )


_PUT_PROBLEMS = problem_responses(
    403,
    (413, f"The body is larger than {BULK_BODY_BYTES // 2**20} MiB"),
    (415, "The body is neither application/json nor text/csv"),
    (422, "Invalid rows (each is named), or a CSV without the required columns"),
)


def _openapi_body(model: type[StrictModel], csv_example: str) -> dict[str, Any]:
    schema = {"type": "array", "items": model.model_json_schema(), "maxItems": MAX_ITEMS}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "text/csv": {"schema": {"type": "string"}, "example": csv_example},
            },
        }
    }


async def _read_body(request: Request) -> bytes:
    # At most BULK_BODY_BYTES: the body-limit middleware refuses more while it streams in.
    chunks = [chunk async for chunk in request.stream()]
    return b"".join(chunks)


def _column_map(raw: str | None) -> Mapping[str, str]:
    if not raw or not raw.strip():
        return {}
    try:
        mapping = orjson.loads(raw)
    except orjson.JSONDecodeError:
        mapping = None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise InvalidInput('column_map must be a JSON object {"field": "Header in the file"}')
    return mapping


async def _entries(
    request: Request, cpu: CpuPool, model: type[StrictModel], kind: Kind, column_map: str | None
) -> list[Entry]:
    """The body as entries, whichever content type carried it (read in the CPU pool)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = media_type == "application/json" or media_type.endswith("+json")
    if not is_json and media_type not in _CSV_TYPES:
        got = repr(media_type) if media_type else "no Content-Type"
        raise HTTPException(415, f"Send the rows as application/json or text/csv, not {got}")
    body = await _read_body(request)
    if is_json:
        read = await cpu.run(len(body), read_json, body, model)
    else:
        read = await cpu.run(len(body), read_csv, body, kind.aliases, _column_map(column_map))
    if read.errors:
        raise RequestValidationError(read.errors)
    return read.entries


@router.put(
    "/{client_id}/accounts",
    response_model=UpsertResult,
    summary="Upsert the chart of accounts",
    description=_description(
        ACCOUNTS,
        "chart of accounts",
        "Codes are trimmed and case-sensitive; leading zeros are kept. `name_en` and "
        "`classification` are changed only when sent (JSON key present, CSV column present); "
        "an empty value clears them. The re-processing trigger is `classification_updated` "
        "when only classifications of existing accounts change, `english_names_updated` when "
        "only English names do, else `accounts_updated`.",
    ),
    responses=_PUT_PROBLEMS,
    openapi_extra=_openapi_body(
        AccountIn, "code,name,name_en,classification\n110105,Banco Estado,Bank,current_assets\n"
    ),
)
async def upsert_accounts(
    client_id: uuid.UUID,
    request: Request,
    actor: AnalystActor,
    resources: ResourcesDep,
    cpu: CpuPoolDep,
    column_map: AccountsColumnMap = None,
) -> dict[str, Any]:
    entries = await _entries(request, cpu, AccountIn, ACCOUNTS, column_map)
    return await reference_data.put_reference_data(resources, actor, client_id, ACCOUNTS, entries)


@router.get(
    "/{client_id}/accounts", response_model=Items[AccountOut], summary="List the chart of accounts"
)
async def list_accounts(
    client_id: uuid.UUID,
    principal: Viewer,
    conn: ReadConnDep,
    unclassified: Annotated[
        bool, Query(description="Only accounts without classification")
    ] = False,
    missing_english: Annotated[bool, Query(description="Only accounts without name_en")] = False,
) -> dict[str, Any]:
    items = await reference_data.list_accounts(
        conn,
        principal.tenant_id,
        client_id,
        unclassified=unclassified,
        missing_english=missing_english,
    )
    return {"items": items}


@router.put(
    "/{client_id}/document-types",
    response_model=UpsertResult,
    summary="Upsert the document types",
    description=_description(
        DOCUMENT_TYPES,
        "document types",
        "Codes are trimmed and upper-cased, so `fac` and `FAC` are the same code. The "
        "re-processing trigger is `document_types_updated`.",
    ),
    responses=_PUT_PROBLEMS,
    openapi_extra=_openapi_body(DocumentTypeIn, "code,name\nFAC,Factura\nBOL,Boleta\n"),
)
async def upsert_document_types(
    client_id: uuid.UUID,
    request: Request,
    actor: AnalystActor,
    resources: ResourcesDep,
    cpu: CpuPoolDep,
    column_map: DocumentTypesColumnMap = None,
) -> dict[str, Any]:
    entries = await _entries(request, cpu, DocumentTypeIn, DOCUMENT_TYPES, column_map)
    return await reference_data.put_reference_data(
        resources, actor, client_id, DOCUMENT_TYPES, entries
    )


@router.get(
    "/{client_id}/document-types",
    response_model=Items[DocumentTypeOut],
    summary="List the document types",
)
async def list_document_types(
    client_id: uuid.UUID, principal: Viewer, conn: ReadConnDep
) -> dict[str, Any]:
    return {"items": await reference_data.list_document_types(conn, principal.tenant_id, client_id)}
