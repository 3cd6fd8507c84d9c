"""Schemathesis against the service's own OpenAPI document (issue #8).

A real `ledger-incidences serve` process (uvicorn) on the suite's Postgres and Redis, with its own
database and Redis key prefix, and a seeded tenant: a client with reference data and a closing
whose ledger was processed twice, so that a snapshot, incidence keys, iterations and a diff exist.
Schemathesis's CLI runs every operation through its phases (examples, coverage, fuzzing with
valid and invalid data, stateful sequences), with generated ids and, most of the time, the
seeded ones. Every check is on: no 5xx, and every answer documented (status code, content type,
headers, body schema).

The CLI rather than the pytest plugin: schemathesis 4.32's plugin renames pytest nodes through
an attribute pytest 9.2 removed.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from string import Template

import httpx
import pytest

from app.settings import Settings
from tests.conftest import Databases, bearer, drain_queue
from tests.e2e.conftest import running_server
from tests.helpers import API
from tests.ops_helpers import migrated_database, unique_prefix, variant

MAX_EXAMPLES = 60  # per operation and phase: about 2,000 requests, 30-40 s on two cores
# Generous limits: 429s would hide the answers under test (the limiter has its own tests).
UNLIMITED = "1000000/60"
LEDGER = (
    "fecha,comprobante,cuenta,nombre_cuenta,tipo_doc,folio,glosa,debe,haber\n"
    "2026-10-01,V1,110105,Banco,FAC,1,Venta,100,0\n"
    "2026-10-01,V1,410101,Ventas,FAC,1,Venta,0,100\n"
    "2026-10-02,V2,999999,Otra,XYZ,2,Compra,50,0\n"
    "2026-11-03,V3,110105,Banco,,3,Fuera,10,10\n"
    "31/02/2026,V4,110105,Banco,FAC,4,Fecha mala,1,0\n"
)
# schemathesis.toml. Where the API validates what JSON Schema cannot describe, the
# positive_data_acceptance check ("data valid by the schema is accepted") also expects those
# refusals, on those operations only: a ledger's content (415 not CSV/XLSX, 422 missing
# columns) and CSV reference data or column_map (422) are free text or binary to the schema,
# and the cursors of movements and of clients are tokens that only the API issues (422
# otherwise).
CONFIG = Template("""
headers = { Authorization = "Bearer $key" }
workers = 2

[generation]
max-examples = $max_examples

[checks]
enabled = true

[dictionaries.clients]
values = $clients
[dictionaries.closings]
values = $closings
[dictionaries.keys]
values = $keys
[dictionaries.iterations]
values = [1, 2]

[parameters]
"path.client_id" = { dictionary = "clients", probability = 0.7 }
"path.closing_id" = { dictionary = "closings", probability = 0.7 }
"path.key" = { dictionary = "keys", probability = 0.7 }
"path.number" = { dictionary = "iterations", probability = 0.5 }
"query.from" = { dictionary = "iterations", probability = 0.5 }
"query.to" = { dictionary = "iterations", probability = 0.5 }

[[operations]]
include-name = "POST /api/v1/closings/{closing_id}/ledger"
checks.positive_data_acceptance.expected-statuses = $upload_refusals

[[operations]]
include-name = [
    "PUT /api/v1/clients/{client_id}/accounts",
    "PUT /api/v1/clients/{client_id}/document-types",
    "GET /api/v1/closings/{closing_id}/incidences/{key}/movements",
    "GET /api/v1/clients",
]
checks.positive_data_acceptance.expected-statuses = $text_refusals
""")
# The check's defaults (schemathesis POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES).
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]


@dataclass(frozen=True)
class Seeded:
    base_url: str
    key: str
    client_id: str
    closing_id: str
    incidence_keys: list[str]


async def _seed(http: httpx.AsyncClient, own: Settings) -> tuple[str, str, list[str]]:
    """A client with a chart and document types, and a closing processed twice."""

    async def call(method: str, path: str, status: int, **kwargs: object) -> dict[str, object]:
        response = await http.request(method, f"{API}{path}", **kwargs)  # type: ignore[arg-type]
        assert response.status_code == status, response.text
        return dict(response.json())

    client_id = str((await call("POST", "/clients", 201, json={"name": "Seeded SpA"}))["id"])
    chart = [
        {"code": "110105", "name": "Banco", "name_en": "Bank", "classification": "assets"},
        {"code": "410101", "name": "Ventas", "name_en": None, "classification": None},
    ]
    await call("PUT", f"/clients/{client_id}/accounts", 200, json=chart)
    doc_types = [{"code": "FAC", "name": "Factura"}]
    await call("PUT", f"/clients/{client_id}/document-types", 200, json=doc_types)
    closing = await call("POST", f"/clients/{client_id}/closings", 201, json={"period": "2026-10"})
    closing_id = str(closing["id"])
    files = {"file": ("ledger.csv", LEDGER.encode(), "text/csv")}
    await call("POST", f"/closings/{closing_id}/ledger", 202, files=files)
    await drain_queue(own)
    await call("POST", f"/closings/{closing_id}/reprocess", 202, json={"notes": "seed"})
    await drain_queue(own)
    snapshot = await call("GET", f"/closings/{closing_id}/incidences", 200)
    assert snapshot["iteration"] == 2
    keys = [str(item["key"]) for item in snapshot["incidences"]]  # type: ignore[attr-defined]
    assert len(keys) >= 5
    return client_id, closing_id, keys


@pytest.fixture(scope="module")
async def seeded(
    settings: Settings, databases: Databases, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Seeded]:
    own = variant(
        settings,
        database_url=await migrated_database(databases, "schemathesis"),
        redis_key_prefix=unique_prefix(settings, "schemathesis"),
    )
    key = f"li_{secrets.token_urlsafe(32)}"
    limits = {f"RATE_LIMIT_{name}": UNLIMITED for name in ("READ", "WRITE", "UPLOAD", "ANON")}
    workdir = tmp_path_factory.mktemp("schemathesis-server")
    with ExitStack() as stack:
        server = running_server(own, workdir, BOOTSTRAP_API_KEY=key, **limits)
        base_url, _child = await asyncio.to_thread(stack.enter_context, server)
        async with httpx.AsyncClient(base_url=base_url, headers=bearer(key), timeout=30) as http:
            client_id, closing_id, keys = await _seed(http, own)
        yield Seeded(base_url, key, client_id, closing_id, keys)
        await asyncio.to_thread(stack.close)


def test_every_operation_conforms_to_the_openapi_document(seeded: Seeded, tmp_path: Path) -> None:
    config = CONFIG.substitute(
        key=seeded.key,
        max_examples=MAX_EXAMPLES,
        clients=json.dumps([seeded.client_id]),
        closings=json.dumps([seeded.closing_id]),
        keys=json.dumps(seeded.incidence_keys),
        upload_refusals=json.dumps([*ACCEPTED, "415", "422"]),
        text_refusals=json.dumps([*ACCEPTED, "422"]),
    )
    (tmp_path / "schemathesis.toml").write_text(config)
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        "--no-color",
        f"{seeded.base_url}/openapi.json",
    ]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    (tmp_path / "schemathesis.out").write_text(output)
    assert run.returncode == 0, output[-30_000:]
    document = httpx.get(f"{seeded.base_url}/openapi.json").json()
    operations = sum(len(methods) for methods in document["paths"].values())
    assert operations >= 27
    # Every operation of the document was tested.
    assert f"{operations} selected / {operations} total" in output, output
