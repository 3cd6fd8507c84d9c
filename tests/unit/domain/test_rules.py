"""Each rule of the incidence catalog (SPEC §4), one small ledger at a time."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from app.domain.reference import ReferenceData
from tests.unit.domain.helpers import by_key, row, run

D = Decimal


def keys(evaluation) -> set[str]:  # type: ignore[no-untyped-def]
    return {i.key for i in evaluation.incidences}


def test_clean_ledger_has_no_incidences(tmp_path: Path) -> None:
    result = run(tmp_path, [row(debit="100"), row(account="210101", credit="100", doc="bol")])
    assert result.incidences == ()
    assert result.statistics.movements_total == 2


class TestRowInvalid:
    def test_consolidated_per_field_and_excluded_from_other_rules(self, tmp_path: Path) -> None:
        rows = [
            row(account="999", date="31/02/2026", voucher="1", debit="10", doc="zz"),  # line 2
            row(voucher="1", credit="10"),  # line 3
            row(account="999", date="2026-13-01", voucher="2", debit="-5", credit="7"),  # line 4
            row(debit="x", voucher="3"),  # line 5
        ]
        incidences = by_key(run(tmp_path, rows))
        date = incidences["ROW_INVALID:date"]
        assert date.severity == "error"
        assert (date.element.kind, date.element.code, date.element.name) == ("column", "date", None)
        assert date.movement_count == 2
        assert date.sample_lines == (2, 4)
        assert (date.first_date, date.last_date) == (None, None)
        # The amounts that could be read are totalled: 10 + -5 and 7.
        assert (date.debit_total, date.credit_total) == (D(5), D(7))
        assert date.message == (
            "Column date has values that cannot be parsed; "
            "first at line 2: date '31/02/2026' is not a valid date"
        )
        assert incidences["ROW_INVALID:debit"].movement_count == 1
        # Rejected rows take part in nothing else: no unknown account/doc type, no bad amount,
        # and voucher 1 is not unbalanced by its rejected line (its valid line is, alone).
        assert "ACCOUNT_NOT_IN_CHART:999" not in incidences
        assert "DOCUMENT_TYPE_UNKNOWN:ZZ" not in incidences
        assert not any(k.startswith("AMOUNT_INVALID") for k in incidences)
        assert incidences["VOUCHER_UNBALANCED:1"].sample_lines == (3,)


class TestAccounts:
    def test_not_in_chart_named_after_first_movement(self, tmp_path: Path) -> None:
        rows = [
            row(account="999", debit="5", name=""),  # line 2: first movement, no name
            row(account="888", debit="5", name="Misc"),  # line 3
            row(account="888", credit="10", name="Other name"),  # line 4
            row(account="999", credit="0", debit="0", name="Later name"),  # line 5
        ]
        incidences = by_key(run(tmp_path, rows))
        assert incidences["ACCOUNT_NOT_IN_CHART:888"].element.name == "Misc"
        assert incidences["ACCOUNT_NOT_IN_CHART:888"].message == (
            "Account 888 (Misc) is not in the chart of accounts"
        )
        # The first movement of 999 has no account_name: null, not a later row's name.
        assert incidences["ACCOUNT_NOT_IN_CHART:999"].element.name is None
        assert incidences["ACCOUNT_NOT_IN_CHART:999"].message == (
            "Account 999 is not in the chart of accounts"
        )
        assert incidences["ACCOUNT_NOT_IN_CHART:999"].severity == "error"

    def test_codes_trimmed_case_sensitive_leading_zeros(self, tmp_path: Path) -> None:
        rows = [
            row(account=" 110105 ", debit="5"),
            row(account="12", credit="5"),  # the chart has 0012, not 12
            row(account="0012", credit="0", debit="0"),
        ]
        found = keys(run(tmp_path, rows))
        assert "ACCOUNT_NOT_IN_CHART:12" in found
        assert "ACCOUNT_NOT_IN_CHART:110105" not in found
        assert "ACCOUNT_NOT_IN_CHART:0012" not in found

    def test_unclassified_and_missing_english_name(self, tmp_path: Path) -> None:
        rows = [
            row(account="510101", debit="30", name="ignored"),  # line 2
            row(account="410101", credit="30"),  # line 3
            row(account="0012", debit="1", date="2026-10-05"),  # line 4: blank classification
            row(account="0012", credit="1", date="2026-10-09"),  # line 5
        ]
        incidences = by_key(run(tmp_path, rows))
        unclassified = incidences["ACCOUNT_UNCLASSIFIED:510101"]
        assert unclassified.severity == "warning"
        assert unclassified.element.to_dict() == {
            "kind": "account",
            "code": "510101",
            "name": "Costo de ventas",  # the chart's name wins over the movement's
        }
        assert unclassified.message == "Account 510101 (Costo de ventas) has no classification"
        petty = incidences["ACCOUNT_UNCLASSIFIED:0012"]
        assert (petty.movement_count, petty.debit_total, petty.credit_total) == (2, D(1), D(1))
        assert (petty.first_date, petty.last_date) == (dt.date(2026, 10, 5), dt.date(2026, 10, 9))
        english = incidences["ACCOUNT_MISSING_ENGLISH_NAME:410101"]
        assert english.message == "Account 410101 (Ventas) has no English name"
        assert english.credit_total == D(30)
        assert "ACCOUNT_MISSING_ENGLISH_NAME:510101" not in incidences


class TestDocumentTypes:
    def test_missing_and_unknown(self, tmp_path: Path) -> None:
        rows = [
            row(doc="", debit="5"),  # line 2
            row(doc=" ", credit="5"),  # line 3
            row(doc="xx", debit="1", voucher="2"),  # line 4
            row(doc=" XX ", credit="1", voucher="2"),  # line 5
            row(doc="fac", debit="2", voucher="3"),  # known, case-insensitively
            row(doc="Bol", credit="2", voucher="3"),  # known (client stored it as "bol")
        ]
        incidences = by_key(run(tmp_path, rows))
        missing = incidences["DOCUMENT_TYPE_MISSING:"]
        assert missing.element.to_dict() == {"kind": "document_type", "code": "", "name": None}
        assert missing.movement_count == 2
        assert missing.message == "Movements without a document type"
        unknown = incidences["DOCUMENT_TYPE_UNKNOWN:XX"]
        assert unknown.element.code == "XX"
        assert unknown.sample_lines == (4, 5)
        assert unknown.message == "Document type XX is not among the client's document types"
        assert {k for k in incidences if k.startswith("DOCUMENT")} == {
            "DOCUMENT_TYPE_MISSING:",
            "DOCUMENT_TYPE_UNKNOWN:XX",
        }

    def test_skipped_without_the_column(self, tmp_path: Path) -> None:
        header = "cuenta,fecha,comprobante,debe,haber"
        result = run(tmp_path, ["110105,2026-10-01,1,5,", "110105,2026-10-01,1,,5"], header=header)
        assert result.incidences == ()
        assert result.statistics.rules_skipped == ("DOCUMENT_TYPE_MISSING", "DOCUMENT_TYPE_UNKNOWN")
        assert "DOCUMENT_TYPE_MISSING" not in result.statistics.by_type


class TestPeriod:
    def test_out_of_period_per_month(self, tmp_path: Path) -> None:
        rows = [
            row(date="2026-10-01", debit="1"),
            row(date="31/10/2026", credit="1"),
            row(date="30/09/2026", debit="2", voucher="2"),
            row(date="2026-09-01", credit="2", voucher="2"),
            row(date="01-11-2026", debit="3", voucher="3"),
            row(date="2025-10-15", credit="3", voucher="3"),
        ]
        incidences = by_key(run(tmp_path, rows))
        september = incidences["MOVEMENT_OUT_OF_PERIOD:2026-09"]
        assert september.element.to_dict() == {"kind": "period", "code": "2026-09", "name": None}
        assert september.severity == "error"
        assert (september.first_date, september.last_date) == (
            dt.date(2026, 9, 1),
            dt.date(2026, 9, 30),
        )
        assert september.message == "Movements dated 2026-09 are outside the closing period 2026-10"
        assert incidences["MOVEMENT_OUT_OF_PERIOD:2026-11"].movement_count == 1
        assert incidences["MOVEMENT_OUT_OF_PERIOD:2025-10"].movement_count == 1
        assert "MOVEMENT_OUT_OF_PERIOD:2026-10" not in incidences

    @pytest.mark.parametrize(
        ("period", "first", "last"),
        [
            ("2024-02", dt.date(2024, 2, 1), dt.date(2024, 2, 29)),
            ("9999-12", dt.date(9999, 12, 1), dt.date(9999, 12, 31)),  # no next month to step to
            ("0001-01", dt.date(1, 1, 1), dt.date(1, 1, 31)),
        ],
    )
    def test_period_bounds(self, period: str, first: dt.date, last: dt.date) -> None:
        reference = ReferenceData(accounts={}, document_types={}, period=period)
        assert (reference.period_start, reference.period_end) == (first, last)


class TestAmounts:
    def test_negative_both_sides_zero(self, tmp_path: Path) -> None:
        rows = [
            row(debit="-5", voucher="1"),  # line 2: negative
            row(credit="-5", voucher="1"),  # line 3: negative
            row(debit="-5", credit="3", voucher="2"),  # line 4: negative wins over both sides
            row(debit="4", credit="4", voucher="3"),  # line 5: both sides
            row(voucher="4"),  # line 6: empty amounts are zero
            row(debit="0.00", credit="0", voucher="4"),  # line 7
        ]
        incidences = by_key(run(tmp_path, rows))
        negative = incidences["AMOUNT_INVALID:negative"]
        assert negative.element.to_dict() == {
            "kind": "amount_rule",
            "code": "negative",
            "name": None,
        }
        assert negative.sample_lines == (2, 3, 4)
        assert (negative.debit_total, negative.credit_total) == (D(-10), D(-2))
        assert incidences["AMOUNT_INVALID:both_sides"].sample_lines == (5,)
        assert incidences["AMOUNT_INVALID:zero"].sample_lines == (6, 7)
        assert (
            incidences["AMOUNT_INVALID:zero"].message
            == "Movements whose debit and credit are both zero"
        )

    def test_signed_amount_zero(self, tmp_path: Path) -> None:
        header = "cuenta,fecha,comprobante,monto,tipo_doc"
        result = run(
            tmp_path, ["110105,2026-10-01,1,0,FAC", "110105,2026-10-01,1,-0,FAC"], header=header
        )
        assert by_key(result)["AMOUNT_INVALID:zero"].movement_count == 2


class TestVouchers:
    def test_unbalanced_counts_all_valid_movements(self, tmp_path: Path) -> None:
        rows = [
            row(voucher="V1", debit="100"),  # line 2
            row(voucher="V1", credit="60", account="210101"),  # line 3
            row(voucher="V1", credit="30", account="210101"),  # line 4
            row(voucher="V1", credit="10", date="bad"),  # line 5: rejected, ignored
            row(voucher="V2", debit="50.10"),  # line 6
            row(voucher="V2", credit="50.1", account="210101"),  # line 7: balanced (exactly)
            row(voucher="V3", debit="7"),  # line 8
            row(voucher="V3", credit="7", account="210101"),  # line 9
            row(
                voucher="V3", debit="99", date="31/02/2026"
            ),  # line 10: rejected, V3 stays balanced
        ]
        incidences = by_key(run(tmp_path, rows))
        v1 = incidences["VOUCHER_UNBALANCED:V1"]
        assert v1.element.to_dict() == {"kind": "voucher", "code": "V1", "name": None}
        assert v1.movement_count == 3
        assert v1.sample_lines == (2, 3, 4)
        assert (v1.debit_total, v1.credit_total) == (D(100), D(90))
        assert (
            v1.message == "Voucher V1 is unbalanced: debit 100.00, credit 90.00 (difference 10.00)"
        )
        assert "VOUCHER_UNBALANCED:V2" not in incidences
        assert "VOUCHER_UNBALANCED:V3" not in incidences

    def test_exact_comparison_no_float_tolerance(self, tmp_path: Path) -> None:
        rows = [
            row(voucher="1", debit="0.1"),
            row(voucher="1", debit="0.2"),
            row(voucher="1", credit="0.3", account="210101"),
            row(voucher="2", debit="1000000000000.01"),
            row(voucher="2", credit="1000000000000.02", account="210101"),
        ]
        found = keys(run(tmp_path, rows))
        assert "VOUCHER_UNBALANCED:1" not in found
        assert "VOUCHER_UNBALANCED:2" in found


class TestDuplicates:
    def test_every_copy_counts(self, tmp_path: Path) -> None:
        same = {"voucher": "7", "debit": "10", "number": "F1", "text": "pago"}
        rows = [
            row(**same),  # line 2
            row(**same, name="names are not compared"),  # line 3
            row(**{**same, "text": "other"}),  # line 4: different description
            row(**{**same, "date": "01/10/2026"}),  # line 5: same date, other spelling
            row(**{**same, "doc": "fac"}),  # line 6: doc types compare upper-cased
            row(**{**same, "debit": "10.00"}),  # line 7: same amount
            row(**{**same, "number": "F2"}),  # line 8: different document number
            row(**{**same, "date": "bad"}),  # line 9: rejected rows are never duplicates
            row(**{**same, "date": "bad"}),  # line 10
            row(voucher="8", credit="10", text="pago"),  # line 11
            row(voucher="8", credit="10", text="pago"),  # line 12
        ]
        incidences = by_key(run(tmp_path, rows))
        seven = incidences["DUPLICATE_MOVEMENT:7"]
        assert seven.severity == "warning"
        assert seven.element.to_dict() == {"kind": "voucher", "code": "7", "name": None}
        assert seven.movement_count == 5
        assert seven.sample_lines == (2, 3, 5, 6, 7)
        assert seven.debit_total == D(50)
        assert seven.message == "Voucher 7 has duplicated movements"
        assert incidences["DUPLICATE_MOVEMENT:8"].sample_lines == (11, 12)
