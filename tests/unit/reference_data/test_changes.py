"""Pure reference-data logic: CSV reading, validation, change planning and triggers."""

from __future__ import annotations

import csv
import itertools
import re

import pytest

from app.domain.errors import InvalidInput
from app.services.reference_data.changes import (
    ACCOUNT_ALIASES,
    DOCUMENT_TYPE_ALIASES,
    MAX_CODE_LENGTH,
    MAX_ITEMS,
    MAX_JSON_MEMBERS,
    MAX_RECORD_CHARS,
    MAX_TEXT_LENGTH,
    Entry,
    Plan,
    accounts_trigger,
    json_items,
    normalise,
    parse_csv,
    plan_changes,
)
from app.services.reference_data.upsert import ACCOUNTS, DOCUMENT_TYPES
from tests.paths import PUBLIC_DATA

CHART = PUBLIC_DATA / "chart_of_accounts.csv"


def test_public_chart_reads_through_the_aliases() -> None:
    with CHART.open(newline="", encoding="utf-8-sig") as fh:
        expected = [(row["account"], row["account_name"]) for row in csv.DictReader(fh)]
    entries = parse_csv(CHART.read_bytes(), ACCOUNT_ALIASES)
    assert [(e.values["code"], e.values["name"]) for e in entries] == expected
    # The file has no English-name or classification column: those fields are not sent at all.
    assert all(set(e.values) == {"code", "name"} for e in entries)
    assert entries[0].where == "line 2"


def test_bom_semicolon_and_accented_headers() -> None:
    body = "\ufeffCódigo Cuenta;Nombre;Nombre en;Clasificación\n 0101 ;Caja;Cash;\n".encode()
    (entry,) = parse_csv(body, ACCOUNT_ALIASES)
    assert entry.values == {"code": "0101", "name": "Caja", "name_en": "Cash", "classification": ""}


def test_cp1252_and_tab_delimiter() -> None:
    body = "code\tname\n1101\tDepósitos a plazo\n".encode("cp1252")
    (entry,) = parse_csv(body, ACCOUNT_ALIASES)
    assert entry.values["name"] == "Depósitos a plazo"


def test_blank_rows_are_skipped_but_keep_line_numbers() -> None:
    body = b'code,name\n1,"One, first"\n\n , \n2,Two\n'
    entries = parse_csv(body, ACCOUNT_ALIASES)
    assert [(e.where, e.values["code"], e.values["name"]) for e in entries] == [
        ("line 2", "1", "One, first"),
        ("line 5", "2", "Two"),
    ]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'code,name\n7,"abc\n', "line 2"),
        (b'code,name\n7,ok\n8,"two\nlines\n', "line 3"),
        (b'code,name,"note\n7,x\n', "line 1"),  # the header's own
    ],
)
def test_a_quoted_field_never_closed_is_refused(body: bytes, where: str) -> None:
    """As in a ledger: the csv module would read it as the rest of the body."""
    with pytest.raises(InvalidInput) as caught:
        parse_csv(body, ACCOUNT_ALIASES)
    assert caught.value.detail.startswith(f"{where} of the CSV body opens a quoted field")


def test_quotes_closed_or_ordinary_are_read() -> None:
    body = b'code,name\n1,"Tubo ""5"" PVC"\n2,Tubo 5" PVC\n3,"two\nlines"\n'
    entries = parse_csv(body, ACCOUNT_ALIASES)
    assert [e.values["name"] for e in entries] == ['Tubo "5" PVC', 'Tubo 5" PVC', "two\nlines"]


def test_missing_column_names_the_field_and_header() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_csv(b"account,type\n1000,Asset\n", ACCOUNT_ALIASES)
    assert "name" in caught.value.detail
    assert "'account', 'type'" in caught.value.detail


def test_column_map_picks_another_header() -> None:
    body = b"account,account_name,type\n1000,Cash,Asset\n"
    (entry,) = parse_csv(body, ACCOUNT_ALIASES, {"classification": "Type"})
    assert entry.values["classification"] == "Asset"
    with pytest.raises(InvalidInput, match="unknown fields"):
        parse_csv(body, ACCOUNT_ALIASES, {"colour": "type"})


def test_document_type_aliases() -> None:
    (entry,) = parse_csv(b"tipo_doc,descripcion\nfac,Factura\n", DOCUMENT_TYPE_ALIASES)
    assert entry.values == {"code": "fac", "name": "Factura"}


def _entry(where: str, **values: str | None) -> Entry:
    return Entry(where, values)


def test_normalise_trims_keeps_case_and_zeros_and_clears_blanks() -> None:
    rows = normalise(
        [
            _entry("item 0", code=" 0011 ", name=" Caja ", name_en="", classification=None),
            _entry("item 1", code="a1", name="lower"),
            _entry("item 2", code="A1", name="upper"),
        ],
        optional=ACCOUNTS.optional,
    )
    assert rows == {
        "0011": {"code": "0011", "name": "Caja", "name_en": None, "classification": None},
        "a1": {"code": "a1", "name": "lower"},
        "A1": {"code": "A1", "name": "upper"},
    }


def test_normalise_reports_duplicates_and_empty_values_together() -> None:
    entries = [
        _entry("line 2", code="1000", name="Cash"),
        _entry("line 3", code="", name="No code"),
        _entry("line 4", code=" 1000", name="Again"),
        _entry("line 5", code="2000", name=" "),
    ]
    with pytest.raises(InvalidInput) as caught:
        normalise(entries)
    detail = caught.value.detail
    assert "duplicate code '1000' at line 2, line 4" in detail
    assert "line 3: code is empty" in detail
    assert "line 5: name is empty" in detail


def test_document_type_codes_collide_after_upper_casing() -> None:
    entries = [_entry("item 0", code="fac", name="a"), _entry("item 1", code="FAC ", name="b")]
    with pytest.raises(InvalidInput, match="duplicate code 'FAC' at item 0, item 1"):
        normalise(entries, upper_codes=DOCUMENT_TYPES.upper_codes)


def test_overlong_values_are_reported() -> None:
    entries = [_entry("item 0", code="1" * (MAX_CODE_LENGTH + 1), name="n" * (MAX_TEXT_LENGTH + 1))]
    with pytest.raises(InvalidInput) as caught:
        normalise(entries)
    assert f"item 0: code is longer than {MAX_CODE_LENGTH} characters" in caught.value.detail
    assert f"item 0: name is longer than {MAX_TEXT_LENGTH} characters" in caught.value.detail


def test_too_many_rows() -> None:
    entries = [_entry(f"item {i}", code=str(i), name="n") for i in range(MAX_ITEMS + 1)]
    with pytest.raises(InvalidInput, match="Too many rows"):
        normalise(entries)


STORED = {
    "1000": {"code": "1000", "name": "Cash", "name_en": "Cash", "classification": None},
    "2000": {"code": "2000", "name": "Payables", "name_en": None, "classification": "current"},
}


def test_plan_counts_only_real_changes_and_keeps_omitted_fields() -> None:
    incoming = {
        "1000": {"code": "1000", "name": "Cash"},  # same name, nothing else sent: unchanged
        "2000": {"code": "2000", "name": "Payables", "name_en": "Accounts payable"},
        "3000": {"code": "3000", "name": "Equity"},
    }
    plan = plan_changes(STORED, incoming, ACCOUNTS.optional)
    assert plan.created == ["3000"]
    assert plan.changed == {"2000": frozenset({"name_en"})}
    by_code = {row["code"]: row for row in plan.rows}
    assert set(by_code) == {"2000", "3000"}
    assert by_code["2000"]["classification"] == "current"  # omitted, so kept
    assert by_code["3000"] == {
        "code": "3000",
        "name": "Equity",
        "name_en": None,
        "classification": None,
    }


@pytest.mark.parametrize(
    ("created", "changed", "expected"),
    [
        ([], {}, None),
        ([], {"1": {"classification"}, "2": {"classification"}}, "classification_updated"),
        ([], {"1": {"name_en"}}, "english_names_updated"),
        ([], {"1": {"classification"}, "2": {"name_en"}}, "accounts_updated"),
        ([], {"1": {"name_en", "classification"}}, "accounts_updated"),
        ([], {"1": {"name"}}, "accounts_updated"),
        (["9"], {"1": {"classification"}}, "accounts_updated"),
        (["9"], {}, "accounts_updated"),
    ],
)
def test_accounts_trigger(
    created: list[str], changed: dict[str, set[str]], expected: str | None
) -> None:
    plan = Plan(created, {code: frozenset(f) for code, f in changed.items()}, [])
    assert accounts_trigger(plan) == expected


def test_trigger_of_a_planned_classification_change() -> None:
    incoming = {"1000": {"code": "1000", "name": "Cash", "classification": "current_assets"}}
    assert accounts_trigger(plan_changes(STORED, incoming, ACCOUNTS.optional)) == (
        "classification_updated"
    )


def test_json_items_are_read_one_at_a_time() -> None:
    body = b' [ {"code": "1", "name": "{[\\"]}"} ,{"code":"2","name":null,"n":1.5e3}\n]\n'
    assert list(json_items(body)) == [
        b'{"code": "1", "name": "{[\\"]}"}',
        b'{"code":"2","name":null,"n":1.5e3}',
    ]
    assert list(json_items(b"[]")) == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"code": "1"}', "must be a JSON array"),
        (b'[{"code": ["1"]}]', "item 0 of the body is not"),
        (b'[{"code": "1"}, 2]', "item 1 of the body is not"),
        (b'[{"code": "1"} {"code": "2"}]', "not followed by"),
        (b'[{"code": "1"}] []', "goes on after"),
        (b'[{"code": "1"', "item 0 of the body is not"),
        (b"[" + b"{}," * MAX_ITEMS + b"{}]", "Too many rows: more than 20000"),
        (b"[{" + b'"a": "b",' * MAX_JSON_MEMBERS + b'"a": "b"}]', "at most 16 members"),
    ],
)
def test_json_bodies_of_another_shape_are_refused_while_reading(body: bytes, says: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(says)):
        list(json_items(body))


def test_json_items_stop_at_the_cap_without_reading_further() -> None:
    items = json_items(b"[" + b"{}," * (MAX_ITEMS + 5) + b"not json at all")
    assert sum(1 for _ in itertools.islice(items, MAX_ITEMS)) == MAX_ITEMS
    with pytest.raises(InvalidInput, match="Too many rows"):
        next(items)


def test_csv_rows_past_the_cap_are_refused_while_reading() -> None:
    body = b"code,name\n" + b"".join(b"%d,n\n" % n for n in range(MAX_ITEMS + 1))
    with pytest.raises(InvalidInput, match="Too many rows: more than 20000"):
        parse_csv(body, ACCOUNT_ALIASES)
    # Blank rows are not rows.
    blank = b"code,name\n" + b"\n , \n" * (MAX_ITEMS + 1) + b"1,One\n"
    assert len(parse_csv(blank, ACCOUNT_ALIASES)) == 1


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (b"code,name\n1," + b"n" * MAX_RECORD_CHARS + b"\n", 2),  # one long line
        (b'code,name\n1,One\n2,"' + b"\n" * MAX_RECORD_CHARS + b'"\n', 3),  # a long quoted field
        (b"," * MAX_RECORD_CHARS + b"\ncode,name\n", 1),  # a header of endless columns
    ],
)
def test_csv_records_are_bounded(body: bytes, line: int) -> None:
    with pytest.raises(InvalidInput, match=f"line {line} of the CSV body is longer than"):
        parse_csv(body, ACCOUNT_ALIASES)


def test_csv_fields_spanning_lines_are_one_record() -> None:
    body = b'code,name\n1,"Caja\nchica"\n2,Two\n'
    entries = parse_csv(body, ACCOUNT_ALIASES)
    assert [(e.where, e.values["name"]) for e in entries] == [
        ("line 2", "Caja\nchica"),
        ("line 3", "Two"),
    ]
