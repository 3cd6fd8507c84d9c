"""Consolidation, ordering, statistics and the narrow-frame contract of `evaluate` (SPEC §4)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from app.domain.errors import AmountOverflow, TooManyIncidences
from app.domain.evaluation import Evaluation, evaluate
from app.domain.ledger.inspect import inspect_ledger
from app.domain.ledger.reader import iter_movement_batches, narrow
from tests.unit.domain.helpers import (
    HEADER,
    REFERENCE,
    narrow_frame,
    row,
    run,
    stored_fetcher,
    write,
)

D = Decimal

# line 2-3: clean balanced voucher V1; line 4: blank; line 5: unknown account 999;
# line 6: missing English name + missing document type; line 7: rejected (bad date);
# line 8: unclassified + unknown doc type + out of period + its voucher V4 is unbalanced.
STATS_ROWS = [
    row(account="110105", voucher="V1", debit="100"),
    row(account="210101", voucher="V1", credit="100"),
    "",
    row(account="999", voucher="V2", debit="50", date="2026-10-02"),
    row(account="410101", voucher="V2", credit="50", doc="", date="2026-10-02"),
    row(account="110105", voucher="V3", debit="10", date="31/02/2026"),
    row(account="510101", voucher="V4", debit="20", doc="XX", date="2026-09-30"),
]


def _dicts(result: Evaluation) -> list[dict[str, Any]]:
    return [incidence.to_dict() for incidence in result.incidences]


def test_statistics_by_hand(tmp_path: Path) -> None:
    stats = run(tmp_path, STATS_ROWS).statistics
    assert stats.movements_total == 6  # the blank line is not a movement
    assert stats.movements_rejected == 1
    assert stats.movements_with_incidences == 3  # lines 5, 6 and 8 (line 7 is rejected)
    assert stats.incidences_total == 8
    assert (stats.debit_total, stats.credit_total) == (D(170), D(150))  # line 7 excluded
    by_type = {k: (v.incidences, v.movements) for k, v in stats.by_type.items()}
    assert by_type == {
        "ROW_INVALID": (1, 1),
        "ACCOUNT_NOT_IN_CHART": (1, 1),
        "ACCOUNT_UNCLASSIFIED": (1, 1),
        "ACCOUNT_MISSING_ENGLISH_NAME": (1, 1),
        "DOCUMENT_TYPE_MISSING": (1, 1),
        "DOCUMENT_TYPE_UNKNOWN": (1, 1),
        "MOVEMENT_OUT_OF_PERIOD": (1, 1),
        "AMOUNT_INVALID": (0, 0),
        "VOUCHER_UNBALANCED": (1, 1),
        "DUPLICATE_MOVEMENT": (0, 0),
    }
    # errors: lines 5, 7, 8 (rejected rows count here); warnings: lines 6 and 8.
    by_severity = {k: (v.incidences, v.movements) for k, v in stats.by_severity.items()}
    assert by_severity == {"error": (4, 3), "warning": (4, 2)}
    assert stats.rules_skipped == ()
    assert stats.to_dict() == {
        "movements_total": 6,
        "movements_rejected": 1,
        "movements_with_incidences": 3,
        "incidences_total": 8,
        "debit_total": "170.00",
        "credit_total": "150.00",
        "by_type": {k: {"incidences": n, "movements": m} for k, (n, m) in by_type.items()},
        "by_severity": {
            "error": {"incidences": 4, "movements": 3},
            "warning": {"incidences": 4, "movements": 2},
        },
        "rules_skipped": [],
    }


def test_order_errors_first_then_count_then_key(tmp_path: Path) -> None:
    keys = [i.key for i in run(tmp_path, STATS_ROWS).incidences]
    assert keys == [
        "ACCOUNT_NOT_IN_CHART:999",
        "MOVEMENT_OUT_OF_PERIOD:2026-09",
        "ROW_INVALID:date",
        "VOUCHER_UNBALANCED:V4",
        "ACCOUNT_MISSING_ENGLISH_NAME:410101",
        "ACCOUNT_UNCLASSIFIED:510101",
        "DOCUMENT_TYPE_MISSING:",
        "DOCUMENT_TYPE_UNKNOWN:XX",
    ]


def test_order_by_movement_count_within_severity(tmp_path: Path) -> None:
    rows = [
        row(doc="", debit="1"),
        row(doc="", credit="1"),
        row(doc="QQ", debit="1", voucher="2"),
        row(doc="QQ", credit="1", voucher="2"),
        row(doc="QQ", debit="0", voucher="3"),  # zero amount: an error, listed first
        row(doc="AA", debit="1", voucher="4"),
        row(doc="AA", credit="1", voucher="4"),
    ]
    keys = [i.key for i in run(tmp_path, rows).incidences]
    assert keys == [
        "AMOUNT_INVALID:zero",
        "DOCUMENT_TYPE_UNKNOWN:QQ",  # 3 movements
        "DOCUMENT_TYPE_MISSING:",  # 2 movements, and "DOCUMENT_TYPE_M" < "DOCUMENT_TYPE_U"
        "DOCUMENT_TYPE_UNKNOWN:AA",  # 2
    ]


def test_sample_lines_are_the_five_smallest_and_lines_are_complete(tmp_path: Path) -> None:
    rows = [row(doc="", debit="1", voucher=str(n)) for n in range(8)]  # lines 2..9
    rows.insert(3, row(doc="FAC", debit="1", voucher="x"))  # line 5 is not caught
    result = run(tmp_path, rows)
    missing = next(i for i in result.incidences if i.key == "DOCUMENT_TYPE_MISSING:")
    assert missing.movement_count == 8
    assert missing.sample_lines == (2, 3, 4, 6, 7)
    assert result.lines_for(missing.key).to_list() == [2, 3, 4, 6, 7, 8, 9, 10]
    for incidence in result.incidences:
        lines = result.lines_for(incidence.key).to_list()
        assert lines == sorted(lines) and len(lines) == incidence.movement_count


def test_incidence_json_shape(tmp_path: Path) -> None:
    rows = [
        row(account="510101", debit="1500000", date="2026-10-01"),
        row(account="210101", credit="1500000", date="2026-10-31"),
    ]
    result = run(tmp_path, rows)
    (incidence,) = _dicts(result)
    assert incidence == {
        "key": "ACCOUNT_UNCLASSIFIED:510101",
        "type": "ACCOUNT_UNCLASSIFIED",
        "severity": "warning",
        "element": {"kind": "account", "code": "510101", "name": "Costo de ventas"},
        "message": "Account 510101 (Costo de ventas) has no classification",
        "movement_count": 1,
        "debit_total": "1500000.00",
        "credit_total": "0.00",
        "first_date": "2026-10-01",
        "last_date": "2026-10-01",
        "sample_lines": [2],
        "first_seen_iteration": None,
    }


def _ledger(tmp_path: Path) -> Path:
    rows = [
        row(voucher="1", debit="10", text="pago", number="A"),
        row(voucher="1", debit="10", text="pago", number="A"),
        row(voucher="1", debit="10", text="pago", number="B"),
        row(voucher="2", credit="5", account="777", name="Nombre", date="x"),
        row(voucher="2", credit="5", account="777", name="Nombre"),
    ]
    return write(tmp_path, "\n".join([HEADER, *rows]) + "\n")


def test_fetch_rows_path_matches_in_frame_texts(tmp_path: Path) -> None:
    path = _ledger(tmp_path)
    layout = inspect_ledger(path)
    with_text = evaluate(narrow_frame(path, layout, keep_text=True), REFERENCE, True)
    calls: list[list[int]] = []
    (tmp_path / "batches").mkdir()
    fetch = stored_fetcher(path, layout, tmp_path / "batches")

    def spy(lines: pl.Series) -> pl.DataFrame:
        calls.append(lines.to_list())
        return fetch(lines)

    fetched = evaluate(narrow_frame(path, layout), REFERENCE, True, fetch_rows=spy)
    assert _dicts(fetched) == _dicts(with_text)
    assert fetched.statistics == with_text.statistics
    # One call: the duplicate candidates (2, 3; line 4's number differs, so does its hash),
    # the first rejected line (5, for its reason) and the unknown account's first line (6).
    assert calls == [[2, 3, 5, 6]]


def test_narrow_frame_without_texts_needs_a_fetcher(tmp_path: Path) -> None:
    path = _ledger(tmp_path)
    with pytest.raises(ValueError, match="fetch_rows"):
        evaluate(narrow_frame(path, inspect_ledger(path)), REFERENCE, True)


def test_duplicates_survive_no_hash_collision(tmp_path: Path) -> None:
    # Force every dup_hash equal: texts still decide, exactly.
    path = _ledger(tmp_path)
    frame = narrow_frame(path, inspect_ledger(path), keep_text=True).with_columns(
        pl.lit(42, pl.UInt64).alias("dup_hash")
    )
    duplicate = next(
        i for i in evaluate(frame, REFERENCE, True).incidences if i.type == "DUPLICATE_MOVEMENT"
    )
    assert duplicate.sample_lines == (2, 3)


def test_unsorted_input_is_sorted(tmp_path: Path) -> None:
    path = _ledger(tmp_path)
    layout = inspect_ledger(path)
    frame = narrow_frame(path, layout, keep_text=True)
    shuffled = frame.reverse()
    assert _dicts(evaluate(shuffled, REFERENCE, True)) == _dicts(evaluate(frame, REFERENCE, True))


def test_amount_overflow_is_refused(tmp_path: Path) -> None:
    rows = [row(debit="900000000000000000", voucher=str(n)) for n in range(200)]  # 1.8e20
    with pytest.raises(AmountOverflow):
        run(tmp_path, rows)


def test_large_but_safe_amounts_total_exactly(tmp_path: Path) -> None:
    big = "123456789012345678.123456789012345678"
    rows = [row(debit=big, voucher="1"), row(credit=big, voucher="1", account="210101")]
    result = run(tmp_path, rows)
    assert result.incidences == ()
    assert result.statistics.to_dict()["debit_total"] == big


def test_batches_concatenate_to_the_same_result(tmp_path: Path) -> None:
    path = write(tmp_path, "\n".join([HEADER, *STATS_ROWS]) + "\n")
    layout = inspect_ledger(path)
    one = pl.concat(narrow(b, keep_text=True) for b in iter_movement_batches(path, layout))
    many = pl.concat(narrow(b, keep_text=True) for b in iter_movement_batches(path, layout, 2))
    assert _dicts(evaluate(one, REFERENCE, True)) == _dicts(evaluate(many, REFERENCE, True))


def test_more_incidences_than_the_limit_are_refused_before_they_are_built(
    tmp_path: Path,
) -> None:
    # Each row is its own unknown account, unbalanced voucher, and so on: count them unlimited.
    rows = [row(account=f"9{n:03}", voucher=f"V{n}", debit="1") for n in range(20)]
    path = write(tmp_path, "\n".join([HEADER, *rows]) + "\n")
    frame = narrow_frame(path, inspect_ledger(path), keep_text=True)
    found = len(evaluate(frame, REFERENCE, True).incidences)
    assert found > 20
    assert len(evaluate(frame, REFERENCE, True, max_incidences=found).incidences) == found
    with pytest.raises(TooManyIncidences) as refused:
        evaluate(frame, REFERENCE, True, max_incidences=found - 1)
    assert refused.value.limit == found - 1
    assert refused.value.found >= found
