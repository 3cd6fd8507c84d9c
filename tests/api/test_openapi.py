"""/openapi.json is valid OpenAPI 3.1 with short, stable operation ids and a typed snapshot, and
a client generated from it (openapi-python-client) drives the main flow."""

from __future__ import annotations

import importlib
import io
import re
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator

from tests.conftest import KeyMaker, Worker, bearer
from tests.helpers import create_closing, upload

OPERATION_IDS = {
    ("GET", "/alive"): "getAlive",
    ("GET", "/ready"): "getReady",
    ("GET", "/health"): "getHealth",
    ("GET", "/api/v1/clients"): "listClients",
    ("POST", "/api/v1/clients"): "createClient",
    ("GET", "/api/v1/clients/{client_id}"): "getClient",
    ("PUT", "/api/v1/clients/{client_id}/accounts"): "upsertAccounts",
    ("GET", "/api/v1/clients/{client_id}/accounts"): "listAccounts",
    ("PUT", "/api/v1/clients/{client_id}/document-types"): "upsertDocumentTypes",
    ("GET", "/api/v1/clients/{client_id}/document-types"): "listDocumentTypes",
    ("POST", "/api/v1/clients/{client_id}/closings"): "createClosing",
    ("GET", "/api/v1/clients/{client_id}/closings"): "listClosings",
    ("GET", "/api/v1/closings/{closing_id}"): "getClosing",
    ("PATCH", "/api/v1/closings/{closing_id}"): "updateClosing",
    ("POST", "/api/v1/closings/{closing_id}/ledger"): "uploadLedger",
    ("POST", "/api/v1/closings/{closing_id}/reprocess"): "reprocessClosing",
    ("GET", "/api/v1/closings/{closing_id}/iterations"): "listIterations",
    ("GET", "/api/v1/closings/{closing_id}/iterations/{number}"): "getIteration",
    ("GET", "/api/v1/closings/{closing_id}/diff"): "getDiff",
    ("GET", "/api/v1/closings/{closing_id}/incidences"): "getSnapshot",
    ("GET", "/api/v1/closings/{closing_id}/incidences/{key}/movements"): "listMovements",
    ("GET", "/api/v1/admin/cache/stats"): "getCacheStats",
    ("POST", "/api/v1/admin/cache/invalidate"): "invalidateCache",
}
# Balanced and in its period, without a document-type column: one incidence, account 9999.
LEDGER = (
    b"fecha,comprobante,cuenta,debe,haber\n2026-10-01,V1,1101,100,0\n2026-10-01,V1,9999,0,100\n"
)
CHART = [{"code": "1101", "name": "Caja", "name_en": "Cash", "classification": "current_assets"}]


@pytest.fixture(scope="module")
async def document(app: FastAPI) -> dict[str, Any]:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http:
        response = await http.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    errors = [error.message for error in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []


def test_every_operation_has_a_short_stable_id(document: dict[str, Any]) -> None:
    found = {
        (method.upper(), path): operation["operationId"]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    assert OPERATION_IDS.items() <= found.items()  # these never change: clients call them
    assert len(set(found.values())) == len(found)
    for operation_id in found.values():  # a new operation gets a name of the same kind
        assert re.fullmatch("[a-z]+([A-Z][a-z]+)+", operation_id), operation_id


async def test_the_snapshot_and_its_views_match_the_documented_schema(
    document: dict[str, Any], client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    answer = document["paths"]["/api/v1/closings/{closing_id}/incidences"]["get"]["responses"]
    documented = answer["200"]["content"]["application/json"]["schema"]
    assert documented == {"$ref": "#/components/schemas/Snapshot"}
    assert {name: header["schema"] for name, header in answer["200"]["headers"].items()} == {
        "ETag": {"type": "string"},
        "Content-Encoding": {"type": "string", "enum": ["gzip"]},
        "Vary": {"type": "string", "enum": ["Accept-Encoding"]},
        "X-Cache": {"type": "string", "enum": ["hit", "miss", "bypass"]},
    }
    snapshot = Draft202012Validator({**documented, "components": document["components"]})
    key = await make_key("analyst")
    closing = await create_closing(client, key, chart=CHART)
    assert (await upload(client, key, closing.id, LEDGER)).status_code == 202
    await run_worker()
    url = f"/api/v1/closings/{closing.id}/incidences"
    for query in ({}, {"severity": "error", "limit": 1}, {"type": "ROW_INVALID"}):
        body = orjson.loads((await client.get(url, params=query, headers=bearer(key))).content)
        assert list(snapshot.iter_errors(body)) == [], body
        assert ("page" in body) == bool(query)


# --- a generated client -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(
    document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleType]:
    """The package openapi-python-client generates from the document, imported."""
    root = tmp_path_factory.mktemp("generated")
    (root / "openapi.json").write_bytes(orjson.dumps(document))
    (root / "config.yaml").write_text("post_hooks: []\n")  # no formatting pass: not needed
    command = [
        *(sys.executable, "-m", "openapi_python_client", "generate"),
        *("--path", "openapi.json", "--config", "config.yaml"),
        *("--meta", "none", "--output-path", "ledger_client"),
    ]
    run = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("ledger_client")
    finally:
        sys.path.remove(str(root))
        for name in [
            m for m in sys.modules if m == "ledger_client" or m.startswith("ledger_client.")
        ]:
            del sys.modules[name]


def _module(package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{name}")


async def test_a_generated_client_drives_the_main_flow(
    app: FastAPI, generated: ModuleType, make_key: KeyMaker, run_worker: Worker
) -> None:
    api, models, types = (_module(generated, name) for name in ("api", "models", "types"))
    clients, closings, reference_data = (
        _module(api, name) for name in ("clients", "closings", "reference_data")
    )
    iterations, incidences = _module(api, "ledgers_and_iterations"), _module(api, "incidences")
    http = generated.AuthenticatedClient(
        base_url="http://test",
        token=await make_key("analyst", name="generated"),
        httpx_args={"transport": ASGITransport(app=app)},
    )

    client = await _module(clients, "create_client").asyncio(
        client=http, body=models.ClientIn(name="Generated SpA")
    )
    assert isinstance(client, models.ClientOut) and client.name == "Generated SpA"
    upserted = await _module(reference_data, "upsert_accounts").asyncio(
        client.id,
        client=http,
        body=[models.UpsertAccountsJsonAccountIn.from_dict(account) for account in CHART],
    )
    assert (upserted.created, upserted.updated, upserted.iterations) == (1, 0, [])
    closing = await _module(closings, "create_closing").asyncio(
        client.id, client=http, body=models.ClosingIn(period="2026-10")
    )
    assert isinstance(closing, models.ClosingOut) and closing.period == "2026-10"

    ledger = types.File(payload=io.BytesIO(LEDGER), file_name="ledger.csv")
    accepted = await _module(iterations, "upload_ledger").asyncio_detailed(
        closing.id, client=http, body=models.UploadLedgerBody(file=ledger)
    )
    assert accepted.status_code == 202, accepted.content
    assert (accepted.parsed.number, accepted.parsed.status) == (1, "queued")
    await run_worker()

    iteration = await _module(iterations, "get_iteration").asyncio(closing.id, 1, client=http)
    assert (iteration.status, iteration.movements_processed) == ("succeeded", 2)
    assert iteration.diff.new == ["ACCOUNT_NOT_IN_CHART:9999"] and iteration.diff.unchanged == 0
    history = await _module(iterations, "list_iterations").asyncio(closing.id, client=http)
    assert [i.number for i in history.items] == [1] and history.next_cursor is None

    snapshot = await _module(incidences, "get_snapshot").asyncio(closing.id, client=http)
    assert isinstance(snapshot, models.Snapshot)
    assert (snapshot.closing_id, snapshot.iteration) == (closing.id, 1)
    statistics = snapshot.statistics
    assert (statistics.movements_total, statistics.movements_rejected) == (2, 0)
    assert (statistics.movements_with_incidences, statistics.incidences_total) == (1, 1)
    assert (statistics.debit_total, statistics.credit_total) == ("100.00", "100.00")
    assert statistics.rules_skipped == ["DOCUMENT_TYPE_MISSING", "DOCUMENT_TYPE_UNKNOWN"]
    (incidence,) = snapshot.incidences
    assert incidence.type_ == models.IncidenceType.ACCOUNT_NOT_IN_CHART
    assert incidence.severity == models.Severity.ERROR
    assert (incidence.element.kind, incidence.element.code) == (models.ElementKind.ACCOUNT, "9999")
    assert (incidence.movement_count, incidence.debit_total, incidence.credit_total) == (
        1,
        "0.00",
        "100.00",
    )
    assert str(incidence.first_date) == str(incidence.last_date) == "2026-10-01"
    assert (incidence.sample_lines, incidence.first_seen_iteration) == ([3], 1)
    assert isinstance(snapshot.page, types.Unset)

    view = await _module(incidences, "get_snapshot").asyncio(
        closing.id, client=http, severity=models.Severity.WARNING
    )
    assert (view.incidences, view.page.total, view.page.offset) == ([], 0, 0)
