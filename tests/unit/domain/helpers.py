"""Shared helpers for the domain tests: write a ledger, parse it, evaluate it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl

from app.adapters.postgres.ledger_store import batch_to_parquet
from app.domain.duplicates import FetchRows
from app.domain.evaluation import Evaluation, evaluate
from app.domain.incidence import Incidence
from app.domain.ledger.format import LedgerLayout, LedgerOptions
from app.domain.ledger.inspect import inspect_ledger
from app.domain.ledger.reader import iter_movement_batches, narrow
from app.domain.reference import Account, ReferenceData
from app.services.iterations.movements import local_fetcher

HEADER = "cuenta,fecha,comprobante,debe,haber,tipo_doc,folio,glosa,nombre_cuenta"

REFERENCE = ReferenceData(
    accounts={
        "110105": Account("Banco Estado", "State Bank", "current_assets"),
        "210101": Account("Proveedores", "Suppliers", "current_liabilities"),
        "410101": Account("Ventas", None, "revenue"),
        "510101": Account("Costo de ventas", "Cost of sales", None),
        "0012": Account("Caja chica", "Petty cash", " "),
    },
    document_types={"FAC": "Factura", "bol": "Boleta"},
    period="2026-10",
)


def write(
    tmp_path: Path, text: str | bytes, name: str = "ledger.csv", encoding: str = "utf-8"
) -> Path:
    """Write a ledger file and return its path."""
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode(encoding))
    return path


def read(
    path: Path, options: LedgerOptions | None = None, batch_rows: int = 250_000
) -> tuple[LedgerLayout, pl.DataFrame]:
    """Inspect and parse a ledger file into one MOVEMENT_SCHEMA frame."""
    layout = inspect_ledger(path, options or LedgerOptions())
    batches = list(iter_movement_batches(path, layout, batch_rows))
    return layout, pl.concat(batches) if batches else pl.DataFrame()


def narrow_frame(
    path: Path, layout: LedgerLayout, keep_text: bool = False, batch_rows: int = 250_000
) -> pl.DataFrame:
    """The narrow frame of a whole ledger, as the worker builds it batch by batch."""
    batches = iter_movement_batches(path, layout, batch_rows)
    return pl.concat(narrow(batch, keep_text) for batch in batches)


def stored_fetcher(path: Path, layout: LedgerLayout, folder: Path) -> FetchRows:
    """The worker's FetchRows: full batches kept as Parquet files, read back by line."""
    files = []
    for n, batch in enumerate(iter_movement_batches(path, layout)):
        files.append(folder / f"batch-{n:05d}.parquet")
        files[-1].write_bytes(batch_to_parquet(batch))
    return local_fetcher(files)


def parse_text(
    tmp_path: Path, text: str, options: LedgerOptions | None = None, **kw: str
) -> pl.DataFrame:
    """Movements of a CSV text."""
    return read(write(tmp_path, text, **kw), options)[1]


def run(
    tmp_path: Path,
    rows: list[str],
    reference: ReferenceData = REFERENCE,
    header: str = HEADER,
    options: LedgerOptions | None = None,
) -> Evaluation:
    """Evaluate a CSV made of a header and rows (narrow frame with texts, no fetcher)."""
    path = write(tmp_path, "\n".join([header, *rows]) + "\n")
    layout = inspect_ledger(path, options or LedgerOptions())
    return evaluate(narrow_frame(path, layout, keep_text=True), reference, layout.has_document_type)


def by_key(evaluation: Evaluation) -> Mapping[str, Incidence]:
    """Incidences indexed by key."""
    return {i.key: i for i in evaluation.incidences}


def row(
    account: str = "110105",
    date: str = "2026-10-01",
    voucher: str = "1",
    debit: str = "",
    credit: str = "",
    doc: str = "FAC",
    number: str = "F1",
    text: str = "glosa",
    name: str = "",
) -> str:
    """One CSV row in HEADER's column order."""
    return ",".join([account, date, voucher, debit, credit, doc, number, text, name])
