"""Engine benchmark: generate an N-row CSV ledger, then time inspect + parse + evaluate, and
what an iteration makes of the evaluation (its snapshot document, lines and diff): for a first
iteration, and for a second one that evaluates the ledger again and diffs against the first.

--accounts N spreads the movements over N account codes that no chart holds: a ledger with
about N incidences, whose documents are most of the work.

Usage: .venv/bin/python bench/engine.py --rows 1000000 [--batch-rows 250000] [--keep DIR]
       [--accounts N]
"""

from __future__ import annotations

import argparse
import csv
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.domain.amounts import format_amount
from app.domain.duplicates import FETCH_COLUMNS
from app.domain.evaluation import evaluate
from app.domain.ledger.format import LedgerOptions
from app.domain.ledger.inspect import inspect_ledger
from app.domain.ledger.reader import iter_movement_batches, narrow
from app.domain.reference import Account, ReferenceData
from app.memory import gc_paused
from app.services.iterations.evaluate import iteration_result

HEADER = "fecha,comprobante,cuenta,nombre_cuenta,tipo_doc,folio,glosa,debe,haber,centro_costo,rut\n"
# fmt: off
WORDS = (
    "pago", "factura", "proveedor", "cliente", "venta", "compra", "arriendo", "sueldo",
    "honorarios", "banco", "transferencia", "deposito", "cheque", "nota", "credito", "debito",
    "ajuste", "provision", "depreciacion", "impuesto", "iva", "retencion", "anticipo",
    "reembolso", "servicio", "mantencion", "insumos",
)
# fmt: on
DOC_TYPES = ("FAC", "BOL", "NC", "ND", "CHQ", "TRF", "")
PERIOD = "2026-10"


def _accounts(rng: random.Random) -> list[tuple[str, str]]:
    codes = sorted({f"{rng.choice('123456')}{rng.randrange(10**5):05d}" for _ in range(520)})[:500]
    return [(code, f"Cuenta {code} {rng.choice(WORDS)}") for code in codes]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Write a realistic ledger of about `rows` movements."""
    rng = random.Random(seed)
    accounts = _accounts(rng)
    written = 0
    voucher = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        block: list[str] = []
        while written < rows:
            voucher += 1
            lines = _voucher_lines(rng, voucher, accounts)
            block.extend(lines)
            written += len(lines)
            if len(block) >= 20_000:
                out.write("".join(block))
                block.clear()
        out.write("".join(block))


def _voucher_lines(rng: random.Random, voucher: int, accounts: list[tuple[str, str]]) -> list[str]:
    count = rng.randint(2, 6)
    cents = [rng.randrange(100, 50_000_000) for _ in range(count - 1)]
    total = sum(cents)
    day = rng.randint(1, 31)
    date = f"{day:02d}/10/2026" if rng.random() < 0.7 else f"2026-10-{day:02d}"
    if rng.random() < 0.002:
        date = f"{day:02d}/09/2026"  # out of period
    doc = rng.choice(DOC_TYPES)
    folio = str(rng.randrange(1, 10**6))
    gloss = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.randrange(10**4)}"
    out = []
    sides = [(c, 0) for c in cents] + [(0, total)]
    if rng.random() < 0.01:
        sides[-1] = (0, total + rng.randrange(1, 1000))  # unbalanced
    for debit, credit in sides:
        code, name = rng.choice(accounts)
        out.append(_line(date, voucher, code, name, doc, folio, gloss, debit, credit, rng))
    if rng.random() < 0.005:
        out.append(out[0])
        out.append(out[-2])  # a duplicate of the first line, kept balanced by its twin
    return out


def _line(date, voucher, code, name, doc, folio, gloss, debit, credit, rng) -> str:
    d = f"{debit // 100}.{debit % 100:02d}" if debit else ""
    c = f"{credit // 100}.{credit % 100:02d}" if credit else ""
    if rng.random() < 0.0005:
        date = "31/02/2026"
    if rng.random() < 0.0005:
        d = '"12,34.5x"'  # quoted: a bad amount, not a broken CSV row
    cc = f"CC{rng.randrange(20):02d}"
    rut = f"{rng.randrange(10**6, 10**8)}-{rng.randrange(10)}"
    return f'{date},{voucher},{code},"{name}",{doc},{folio},{gloss},{d},{c},{cc},{rut}\n'


# How other programs export the same ledger (see export_as).
EXPORTS = ("plain", "crlf", "quoted", "spanish")


def export_as(source: Path, export: str) -> tuple[Path, str]:
    """The generated ledger as another program exports it, and its delimiter: `crlf` (Windows
    line ends), `quoted` (every field quoted, CRLF), `spanish` (`;`, thousands dots, decimal
    commas, CRLF); `plain` is the file as generated."""
    if export == "plain":
        return source, ","
    target = source.with_name(f"{source.stem}-{export}.csv")
    delimiter = ";" if export == "spanish" else ","
    quoting = csv.QUOTE_ALL if export == "quoted" else csv.QUOTE_MINIMAL
    with source.open(newline="", encoding="utf-8") as fh, target.open("w", newline="") as out:
        writer = csv.writer(out, delimiter=delimiter, quoting=quoting, lineterminator="\r\n")
        for number, row in enumerate(csv.reader(fh)):
            if export == "spanish" and number:
                row[7:9] = (_spanish_amount(value) for value in row[7:9])
            writer.writerow(row)
    return target, delimiter


def _spanish_amount(value: str) -> str:
    """1234567.89 as 1.234.567,89 (bad amounts left as they are)."""
    whole, dot, cents = value.partition(".")
    if not (whole.isdigit() and dot and cents.isdigit()):
        return value
    return f"{int(whole):,}".replace(",", ".") + "," + cents


def reference(path: Path) -> ReferenceData:
    """A chart with most of the generated accounts, some unclassified or without English name."""
    rng = random.Random(11)
    with path.open(encoding="utf-8") as fh:
        head = [next(fh, "") for _ in range(2000)][1:]
    codes = {line.split(",")[2] for line in head if line}
    accounts = {
        code: Account(
            name=f"Cuenta {code}",
            name_en=None if rng.random() < 0.1 else f"Account {code}",
            classification=None if rng.random() < 0.1 else "current_assets",
        )
        for code in sorted(codes)
        if rng.random() < 0.95
    }
    return ReferenceData(
        accounts=accounts,
        document_types={"FAC": "Factura", "BOL": "Boleta", "NC": "Nota de crédito"},
        period=PERIOD,
    )


def parquet_fetcher(folder: Path):
    """FetchRows over the per-batch Parquet files of (line, document_number, description)."""

    def fetch(lines: pl.Series) -> pl.DataFrame:
        wanted = lines.implode()
        return pl.scan_parquet(folder / "*.parquet").filter(pl.col("line").is_in(wanted)).collect()

    return fetch


def peak_rss_mib() -> float:
    """Peak resident set size of this process, MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-rows", type=int, default=250_000)
    parser.add_argument("--keep", type=Path, help="directory to keep the generated CSV in")
    parser.add_argument("--accounts", type=int, help="spread movements over N unknown accounts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        path = folder / f"ledger_{args.rows}.csv"
        if not path.exists():
            t = time.perf_counter()
            generate(path, args.rows)
            print(
                f"generate: {time.perf_counter() - t:.1f}s, {path.stat().st_size / 2**20:.0f} MiB"
            )
        ref = reference(path)
        rss_before = peak_rss_mib()
        t0 = time.perf_counter()
        layout = inspect_ledger(path, LedgerOptions())
        t1 = time.perf_counter()
        spill = Path(tmp) / "texts"
        spill.mkdir(exist_ok=True)
        parts = []
        for n, batch in enumerate(iter_movement_batches(path, layout, args.batch_rows)):
            parts.append(narrow(batch))
            # What the worker does: its movements are kept for drill-down and fetched back.
            texts = batch.select("line", *FETCH_COLUMNS)
            texts.write_parquet(spill / f"{n:05d}.parquet", compression="lz4")
        movements = pl.concat(parts, rechunk=False)
        del parts
        if args.accounts:
            account = (pl.col("line") % args.accounts).cast(pl.String).cast(pl.Categorical)
            movements = movements.with_columns(account.alias("account_code"))
            ref = ReferenceData(accounts={}, document_types=ref.document_types, period=PERIOD)
        t2 = time.perf_counter()
        rss_parse = peak_rss_mib()
        fetch = parquet_fetcher(spill)
        with gc_paused():  # as an iteration's run has it (services/iterations/run.py)
            result = evaluate(movements, ref, layout.has_document_type, fetch_rows=fetch)
            t3 = time.perf_counter()
            first = iteration_result(result, None, "bench", 1, datetime.now(UTC))
            t4 = time.perf_counter()
            again = evaluate(movements, ref, layout.has_document_type, fetch_rows=fetch)
            t5 = time.perf_counter()
            iteration_result(again, orjson.loads(first.document), "bench", 2, datetime.now(UTC))
            t6 = time.perf_counter()
        n = movements.height
        stats = result.statistics
        print(f"movements: {n:,}  incidences: {stats.incidences_total:,}")
        print(f"inspect : {t1 - t0:7.3f}s")
        print(f"parse   : {t2 - t1:7.3f}s  ({n / (t2 - t1):,.0f} rows/s)")
        print(f"evaluate: {t3 - t2:7.3f}s  ({n / (t3 - t2):,.0f} rows/s)")
        print(f"document: {t4 - t3:7.3f}s  (iteration 1: snapshot, lines, diff)")
        print(f"again   : {t6 - t5:7.3f}s  (iteration 2 against 1, after evaluate {t5 - t4:.3f}s)")
        print(f"total   : {t4 - t0:7.3f}s  ({n / (t4 - t0):,.0f} rows/s, iteration 1)")
        narrow_mib = movements.estimated_size() >> 20
        print(
            f"peak RSS: {peak_rss_mib():.0f} MiB (before engine: {rss_before:.0f} MiB, "
            f"after parse: {rss_parse:.0f} MiB; narrow frame ~{narrow_mib} MiB)"
        )
        debit, credit = format_amount(stats.debit_total), format_amount(stats.credit_total)
        print(f"debit_total={debit} credit_total={credit}")


if __name__ == "__main__":
    main()
