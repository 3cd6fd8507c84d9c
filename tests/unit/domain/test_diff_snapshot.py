"""Diffs between iterations, first_seen_iteration runs, canonical JSON and content hashes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from decimal import Decimal

import orjson
import pytest

from app.domain.amounts import format_amount
from app.domain.diff import assign_first_seen, diff_documents, diff_incidences
from app.domain.incidence import Element, Incidence
from app.domain.review import reviewed
from app.domain.snapshot import (
    SnapshotQuery,
    canonical_json,
    content_hash,
    indexed_view,
    unhashed_snapshot,
    view_index,
)
from app.domain.statistics import Statistics, Tally

D = Decimal


def inc(
    key: str, count: int = 1, debit: str = "0", credit: str = "0", first_seen: int | None = None
) -> Incidence:
    kind, code = key.split(":", 1)
    return Incidence(
        key=key,
        type=kind,
        severity="error",
        element=Element("account", code, None),
        message=f"m {key}",
        movement_count=count,
        debit_total=D(debit),
        credit_total=D(credit),
        first_date=dt.date(2026, 10, 1),
        last_date=dt.date(2026, 10, 2),
        sample_lines=(2,),
        first_seen_iteration=first_seen,
    )


def _document(incidences: list[Incidence]) -> bytes:
    at = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    return canonical_json(reviewed(unhashed_snapshot("c", 1, {}, incidences, computed_at=at), {}))


class TestDiff:
    def test_stored_documents_diff_as_the_incidences_do(self) -> None:
        before = [inc("A:1"), inc("A:2", 2, "10"), inc("A:3", 1, "5", "5"), inc("A:4")]
        after = [
            inc("A:5"),
            inc("A:2", 3, "10"),
            inc("A:3", 1, "5.00", "5"),
            inc("A:4", 1, "0", "1"),
        ]
        stored = json.loads(diff_documents(_document(before), _document(after), (3, 7)))
        assert stored == {"from": 3, "to": 7, **diff_incidences(before, after).to_dict()}

    def test_new_resolved_changed_unchanged(self) -> None:
        before = [inc("A:1"), inc("A:2", 2, "10"), inc("A:3", 1, "5", "5"), inc("A:4")]
        after = [
            inc("A:5"),
            inc("A:2", 3, "10"),
            inc("A:3", 1, "5.00", "5"),
            inc("A:4", 1, "0", "1"),
            inc("A:0"),
        ]
        diff = diff_incidences(before, after)
        assert diff.new == ("A:0", "A:5")
        assert diff.resolved == ("A:1",)
        assert [c.key for c in diff.changed] == ["A:2", "A:4"]
        assert diff.unchanged == 1  # A:3: 5 and 5.00 are the same amount
        assert diff.to_dict()["changed"][0] == {
            "key": "A:2",
            "before": {"movement_count": 2, "debit_total": "10.00", "credit_total": "0.00"},
            "after": {"movement_count": 3, "debit_total": "10.00", "credit_total": "0.00"},
        }

    def test_accepts_stored_json_shapes(self) -> None:
        before = [inc("A:1", 1, "1").to_dict()]
        after = [inc("A:1", 1, "1.0")]
        assert diff_incidences(before, after).to_dict() == {
            "new": [],
            "resolved": [],
            "changed": [],
            "unchanged": 1,
        }

    def test_empty(self) -> None:
        assert diff_incidences([], []).to_dict() == {
            "new": [],
            "resolved": [],
            "changed": [],
            "unchanged": 0,
        }


class TestFirstSeen:
    def test_run_continues_resets_after_resolution(self) -> None:
        it1 = assign_first_seen([inc("A:1"), inc("A:2")], None, 1)
        assert [i.first_seen_iteration for i in it1] == [1, 1]
        it2 = assign_first_seen([inc("A:1"), inc("A:3")], it1, 2)  # A:2 resolved
        assert {i.key: i.first_seen_iteration for i in it2} == {"A:1": 1, "A:3": 2}
        it3 = assign_first_seen([inc("A:1"), inc("A:2"), inc("A:3")], [i.to_dict() for i in it2], 3)
        # A:2 is back after a gap: a new run starts at 3.
        assert {i.key: i.first_seen_iteration for i in it3} == {"A:1": 1, "A:2": 3, "A:3": 2}


def _statistics() -> Statistics:
    return Statistics(
        movements_total=3,
        movements_rejected=0,
        movements_with_incidences=1,
        incidences_total=1,
        debit_total=D("10.5"),
        credit_total=D(0),
        by_type={"A": Tally(1, 1)},
        by_severity={"error": Tally(1, 1), "warning": Tally(0, 0)},
        rules_skipped=(),
    )


class TestSnapshot:
    def test_canonical_json_sorted_compact(self) -> None:
        assert canonical_json({"b": 1, "a": {"d": D("1.5"), "c": [1, 2]}}) == (
            b'{"a":{"c":[1,2],"d":"1.50"},"b":1}'
        )

    def test_content_hash_is_sha256_of_canonical_content(self) -> None:
        incidences = [inc("A:1", first_seen=1)]
        content = {
            "closing_id": "c-1",
            "iteration": 4,
            "statistics": _statistics().to_dict(),
            "incidences": [i.to_dict() for i in incidences],
        }
        expected = hashlib.sha256(
            json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        ).hexdigest()
        assert content_hash("c-1", 4, _statistics(), incidences) == expected

    def test_deterministic_and_sensitive(self) -> None:
        a = content_hash("c-1", 4, _statistics(), [inc("A:1")])
        assert a == content_hash("c-1", 4, _statistics().to_dict(), [inc("A:1").to_dict()])
        assert a != content_hash("c-1", 5, _statistics(), [inc("A:1")])
        assert a != content_hash("c-1", 4, _statistics(), [inc("A:1", 2)])
        assert a != content_hash(
            "c-1", 4, _statistics(), [dataclasses.replace(inc("A:1"), first_seen_iteration=2)]
        )

    def test_snapshot_document(self) -> None:
        at = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
        unhashed = unhashed_snapshot("c-1", 4, _statistics(), [inc("A:1")], at)
        assert "content_hash" not in unhashed
        # An iteration's own document is hashed once, by reviewed(), every incidence open.
        doc = reviewed(unhashed, {})
        assert list(doc) == [
            "closing_id",
            "iteration",
            "computed_at",
            "statistics",
            "incidences",
            "content_hash",  # added last, by reviewed()
        ]
        assert doc["computed_at"] == "2026-11-01T12:00:00+00:00"
        assert doc["content_hash"] == content_hash("c-1", 4, doc["statistics"], doc["incidences"])
        later = unhashed_snapshot("c-1", 4, _statistics(), [inc("A:1")], at + dt.timedelta(hours=1))
        assert (
            reviewed(later, {})["content_hash"] == doc["content_hash"]
        )  # computed_at is not hashed
        json.loads(canonical_json(doc))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (D("1500000"), "1500000.00"),
        (D("1500000.000000"), "1500000.00"),
        (D("10.1"), "10.10"),
        (D("-0.00"), "0.00"),
        (D("0.30000000000000004"), "0.30000000000000004"),
        (D("123456789012345678.123456789012345678"), "123456789012345678.123456789012345678"),
        (D("1E+3"), "1000.00"),
        (D("-2.5"), "-2.50"),
    ],
)
def test_format_amount(value: Decimal, text: str) -> None:
    assert format_amount(value) == text


def _reference_view(document: bytes, query: SnapshotQuery) -> bytes:
    """A view as it reads in SPEC §6: the document, its incidences filtered and paged."""
    snapshot = json.loads(document)
    selected = [
        i
        for i in snapshot["incidences"]
        if query.type in (None, i["type"]) and query.severity in (None, i["severity"])
    ]
    end = None if query.limit is None else query.offset + query.limit
    snapshot["incidences"] = selected[query.offset : end]
    snapshot["page"] = {"total": len(selected), "offset": query.offset, "limit": query.limit}
    return orjson.dumps(snapshot)


def test_views_from_the_index_are_the_documents_filtered_and_paged() -> None:
    incidences = [
        dataclasses.replace(inc(f"{kind}:{n}", n), type=kind, severity=severity)
        for n, (kind, severity) in enumerate(
            [("A", "error"), ("B", "warning"), ("A", "warning"), ("C", "error")] * 5
        )
    ]
    document = _document(incidences)
    index = view_index(document)
    queries = [
        SnapshotQuery(kind, severity, limit, offset)
        for kind in (None, "A", "B", "Z")
        for severity in (None, "error", "warning")
        for limit in (None, 1, 3)
        for offset in (0, 2, 30)
    ]
    for query in queries:
        assert indexed_view(index, query) == _reference_view(document, query), query
