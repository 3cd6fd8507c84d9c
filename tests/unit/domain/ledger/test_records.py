"""The CSV chunker cuts only between records: lines and values match Python's csv module."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.errors import MalformedLedger
from app.domain.ledger import csv as ledger_csv
from app.domain.ledger.inspect import inspect_ledger

HEADER = ["cuenta", "fecha", "comprobante", "debe", "haber"]
cell = st.text(alphabet=["a", "1", " ", ",", '"', "\n", "é", ";"], max_size=6)
record = st.one_of(st.just(None), st.lists(cell, min_size=5, max_size=5))


def _write(path: Path, records: list[list[str] | None]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for rec in records:
        if rec is None:
            out.write("\n")  # an empty line
        else:
            writer.writerow(rec)
    text = out.getvalue()
    path.write_text(text, encoding="utf-8", newline="")
    return text


def _expected(text: str) -> list[tuple[int, list[str]]]:
    rows = []
    for number, rec in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        rows.append((number, (rec + [""] * 5)[:5]))
    return rows


def _actual(path: Path) -> list[tuple[int, list[str]]]:
    layout = inspect_ledger(path)
    frames = list(ledger_csv.iter_csv_frames(path, layout, batch_rows=2))
    frame = pl.concat(frames)
    return [
        (r[-1], [c or "" for c in r[:-1]])
        for r in frame.select(*(f"c{i}" for i in range(5)), "line").rows()
    ]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(record, min_size=1, max_size=25))
def test_tiny_chunks_match_csv_module(monkeypatch: pytest.MonkeyPatch, records: list) -> None:
    # Force a cut attempt every few bytes so that boundaries land everywhere, quotes included.
    monkeypatch.setattr(ledger_csv, "MIN_CHUNK_BYTES", 7)
    monkeypatch.setattr(ledger_csv, "CHUNK_ROWS", 1)
    monkeypatch.setattr(ledger_csv, "FIRST_CHUNK_BYTES", 1)
    records = [*records, ["1", "2026-10-01", "1", "5", ""]]  # at least one movement
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "l.csv"
        text = _write(path, records)
        assert _actual(path) == _expected(text)


def test_unclosed_quote_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_csv, "MAX_RECORD_BYTES", 1000)
    monkeypatch.setattr(ledger_csv, "MIN_CHUNK_BYTES", 100)
    monkeypatch.setattr(ledger_csv, "FIRST_CHUNK_BYTES", 100)
    path = tmp_path / "l.csv"
    path.write_text(
        ",".join(HEADER) + "\n1,2026-10-01,1,5,\n" + '2,"never closed\n' + "x,y\n" * 500
    )
    layout = inspect_ledger(path)
    with pytest.raises(MalformedLedger, match="after line 2"):
        list(ledger_csv.iter_csv_frames(path, layout, batch_rows=10))
