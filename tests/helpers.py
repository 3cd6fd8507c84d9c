"""Shared helpers of the API tests: clients and closings, uploads, problem checks, and an
independent reference of the incidence rules (SPEC §4) to compute expected results from."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

import orjson
from httpx import AsyncClient, Response

from tests.conftest import bearer

API = "/api/v1"
ERRORS = {
    "ROW_INVALID",
    "ACCOUNT_NOT_IN_CHART",
    "MOVEMENT_OUT_OF_PERIOD",
    "AMOUNT_INVALID",
    "VOUCHER_UNBALANCED",
}
TYPES = (
    "ROW_INVALID",
    "ACCOUNT_NOT_IN_CHART",
    "ACCOUNT_UNCLASSIFIED",
    "ACCOUNT_MISSING_ENGLISH_NAME",
    "DOCUMENT_TYPE_MISSING",
    "DOCUMENT_TYPE_UNKNOWN",
    "MOVEMENT_OUT_OF_PERIOD",
    "AMOUNT_INVALID",
    "VOUCHER_UNBALANCED",
    "DUPLICATE_MOVEMENT",
)
DOCUMENT_TYPE_RULES = ("DOCUMENT_TYPE_MISSING", "DOCUMENT_TYPE_UNKNOWN")


class Closing(NamedTuple):
    client_id: str
    id: str


async def create_closing(
    client: AsyncClient,
    key: str,
    *,
    chart: Sequence[Mapping[str, Any]] = (),
    doc_types: Sequence[Mapping[str, Any]] = (),
    period: str = "2026-10",
    name: str = "Test client",
) -> Closing:
    """A new client with the given reference data, and an open closing of `period`."""
    created = await client.post(f"{API}/clients", json={"name": name}, headers=bearer(key))
    assert created.status_code == 201, created.text
    client_id = str(created.json()["id"])
    if chart:
        put = await client.put(
            f"{API}/clients/{client_id}/accounts", json=list(chart), headers=bearer(key)
        )
        assert put.status_code == 200, put.text
    if doc_types:
        put = await client.put(
            f"{API}/clients/{client_id}/document-types", json=list(doc_types), headers=bearer(key)
        )
        assert put.status_code == 200, put.text
    closing = await client.post(
        f"{API}/clients/{client_id}/closings", json={"period": period}, headers=bearer(key)
    )
    assert closing.status_code == 201, closing.text
    return Closing(client_id, str(closing.json()["id"]))


async def upload(
    client: AsyncClient,
    key: str,
    closing_id: str,
    content: bytes,
    filename: str = "ledger.csv",
    **form: str,
) -> Response:
    """POST the ledger as multipart `file` (+ form fields such as column_map)."""
    return await client.post(
        f"{API}/closings/{closing_id}/ledger",
        files={"file": (filename, content, "application/octet-stream")},
        data=form,
        headers=bearer(key),
    )


async def get_json(client: AsyncClient, key: str, path: str, **params: Any) -> Any:
    response = await client.get(f"{API}{path}", params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


# Per-request headers that legitimately differ between two answers to the same request.
VOLATILE_HEADERS = frozenset({"x-request-id", "x-ratelimit-remaining", "x-ratelimit-reset"})


def stable_headers(response: Response) -> dict[str, str]:
    """An answer's headers but the VOLATILE_HEADERS."""
    return {k: v for k, v in response.headers.items() if k not in VOLATILE_HEADERS}


def assert_problem(response: Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem+json answer of `status`; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = orjson.loads(response.content)
    assert body["status"] == status
    assert {"type", "title", "status", "detail"} <= body.keys()
    return body


# --- an independent reference of the rules -------------------------------------------------


@dataclass(frozen=True)
class Movement:
    line: int
    account_code: str
    date: dt.date
    voucher: str
    debit: Decimal
    credit: Decimal
    document_type: str | None = None
    document_number: str | None = None
    description: str | None = None
    account_name: str | None = None


@dataclass(frozen=True)
class Account:
    name: str
    name_en: str | None = None
    classification: str | None = None


def chart_json(chart: Mapping[str, Account]) -> list[dict[str, Any]]:
    """A chart as the JSON body of PUT /clients/{id}/accounts."""
    return [
        {"code": c, "name": a.name, "name_en": a.name_en, "classification": a.classification}
        for c, a in chart.items()
    ]


@dataclass
class Expected:
    """What one consolidated incidence must show."""

    type: str
    lines: list[int] = field(default_factory=list)
    debit: Decimal = Decimal(0)
    credit: Decimal = Decimal(0)
    dates: list[dt.date] = field(default_factory=list)
    name: str | None = None

    @property
    def count(self) -> int:
        return len(self.lines)


def expected_incidences(
    movements: Sequence[Movement],
    chart: Mapping[str, Account],
    period: str,
    doc_types: Mapping[str, str] | None = None,
    rejected: Mapping[int, str] | None = None,
) -> dict[str, Expected]:
    """Key → expected incidence; `doc_types` None means the file has no document_type column."""
    found: dict[str, Expected] = {}
    first_names: dict[str, str | None] = {}

    def catch(kind: str, code: str, m: Movement | None, line: int) -> None:
        key = f"{kind}:{code}"
        item = found.setdefault(key, Expected(kind))
        item.lines.append(line)
        if m is not None:
            item.debit += m.debit
            item.credit += m.credit
            item.dates.append(m.date)
            first_names.setdefault(key, m.account_name or None)

    for line, column in (rejected or {}).items():
        catch("ROW_INVALID", column, None, line)
    balance: dict[str, Decimal] = defaultdict(Decimal)
    copies = Counter(_dup_key(m) for m in movements)
    for m in movements:
        balance[m.voucher] += m.debit - m.credit
    for m in sorted(movements, key=lambda m: m.line):
        account = chart.get(m.account_code)
        if account is None:
            catch("ACCOUNT_NOT_IN_CHART", m.account_code, m, m.line)
        else:
            if not (account.classification or "").strip():
                catch("ACCOUNT_UNCLASSIFIED", m.account_code, m, m.line)
            if not (account.name_en or "").strip():
                catch("ACCOUNT_MISSING_ENGLISH_NAME", m.account_code, m, m.line)
        if doc_types is not None:
            if not m.document_type:
                catch("DOCUMENT_TYPE_MISSING", "", m, m.line)
            elif m.document_type.upper() not in doc_types:
                catch("DOCUMENT_TYPE_UNKNOWN", m.document_type.upper(), m, m.line)
        if m.date.strftime("%Y-%m") != period:
            catch("MOVEMENT_OUT_OF_PERIOD", m.date.strftime("%Y-%m"), m, m.line)
        if m.debit < 0 or m.credit < 0:
            catch("AMOUNT_INVALID", "negative", m, m.line)
        elif m.debit > 0 and m.credit > 0:
            catch("AMOUNT_INVALID", "both_sides", m, m.line)
        elif m.debit == 0 and m.credit == 0:
            catch("AMOUNT_INVALID", "zero", m, m.line)
        if balance[m.voucher] != 0:
            catch("VOUCHER_UNBALANCED", m.voucher, m, m.line)
        if copies[_dup_key(m)] >= 2:
            catch("DUPLICATE_MOVEMENT", m.voucher, m, m.line)
    for key, item in found.items():
        item.lines.sort()
        code = key.split(":", 1)[1]
        if item.type.startswith("ACCOUNT_"):
            named = chart.get(code)
            item.name = named.name if named and named.name.strip() else first_names.get(key)
        elif item.type.startswith("DOCUMENT_TYPE_"):
            item.name = (doc_types or {}).get(code)
    return found


def _dup_key(m: Movement) -> tuple[Any, ...]:
    doc_type = m.document_type.upper() if m.document_type else m.document_type
    return (
        m.account_code,
        m.date,
        m.voucher,
        doc_type,
        m.document_number,
        m.description,
        m.debit,
        m.credit,
    )


def assert_incidences(document: Mapping[str, Any], expected: Mapping[str, Expected]) -> None:
    """The snapshot's incidences are exactly `expected`, in SPEC order, figure by figure."""
    incidences = document["incidences"]
    got = {i["key"]: i for i in incidences}
    assert sorted(got) == sorted(expected)
    for key, want in expected.items():
        item = got[key]
        assert item["type"] == want.type, key
        assert item["severity"] == ("error" if want.type in ERRORS else "warning"), key
        assert item["movement_count"] == want.count, key
        assert item["sample_lines"] == want.lines[:5], key
        assert item["element"]["code"] == key.split(":", 1)[1], key
        if want.type == "ROW_INVALID":
            assert item["first_date"] is None and item["last_date"] is None, key
            continue
        assert Decimal(item["debit_total"]) == want.debit, key
        assert Decimal(item["credit_total"]) == want.credit, key
        assert item["first_date"] == min(want.dates).isoformat(), key
        assert item["last_date"] == max(want.dates).isoformat(), key
        assert item["element"]["name"] == want.name, key
    order = [(i["severity"] != "error", -i["movement_count"], i["key"]) for i in incidences]
    assert order == sorted(order)


def assert_statistics(
    statistics: Mapping[str, Any],
    movements: Sequence[Movement],
    expected: Mapping[str, Expected],
    *,
    rejected: Iterable[int] = (),
    skipped: Sequence[str] = (),
) -> None:
    """SPEC §4 statistics, recomputed from the movements and the expected incidences."""
    rejected = set(rejected)  # `movements` are the valid ones; these lines were rejected
    assert statistics["movements_total"] == len(movements) + len(rejected)
    assert statistics["movements_rejected"] == len(rejected)
    assert Decimal(statistics["debit_total"]) == sum((m.debit for m in movements), Decimal(0))
    assert Decimal(statistics["credit_total"]) == sum((m.credit for m in movements), Decimal(0))
    assert statistics["incidences_total"] == len(expected)
    caught = {line for e in expected.values() if e.type != "ROW_INVALID" for line in e.lines}
    assert statistics["movements_with_incidences"] == len(caught)
    assert sorted(statistics["rules_skipped"]) == sorted(skipped)
    for kind in TYPES:
        items = [e for e in expected.values() if e.type == kind]
        tally = {"incidences": len(items), "movements": sum(e.count for e in items)}
        if kind in skipped:
            assert kind not in statistics["by_type"]
        else:
            assert statistics["by_type"].get(kind, {"incidences": 0, "movements": 0}) == tally
    for severity in ("error", "warning"):
        items = [e for e in expected.values() if (e.type in ERRORS) == (severity == "error")]
        rows = {line for e in items for line in e.lines}
        got = statistics["by_severity"].get(severity, {"incidences": 0, "movements": 0})
        assert got == {"incidences": len(items), "movements": len(rows)}, severity
