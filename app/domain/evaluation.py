"""Evaluating a ledger: run the rules, consolidate incidences, compute statistics (SPEC §4)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType

import polars as pl

from app.domain.amounts import difference
from app.domain.catalog import DOCUMENT_TYPE_RULES, ElementKind, IncidenceType, Severity
from app.domain.consolidation import RuleHits, aggregate_hits, build_incidences
from app.domain.duplicates import (
    FETCH_COLUMNS,
    FetchRows,
    confirm_duplicates,
    duplicate_candidates,
)
from app.domain.errors import AmountOverflow, TooManyIncidences
from app.domain.incidence import Incidence, display_order
from app.domain.reference import ReferenceData, blank
from app.domain.rules import RULES, VALID, Rule, RuleContext, unbalanced_vouchers
from app.domain.statistics import Statistics, Tally

REQUIRED_COLUMNS = (
    "line",
    "account_code",
    "date",
    "voucher",
    "document_type",
    "debit",
    "credit",
    "invalid_field",
    "dup_hash",
)
# Decimal(38, 18) sums wrap silently past ~1.7e20 in Polars group sums; keeping the sum of
# |debit| + |credit| over the whole ledger below this bound rules out overflow in every total.
MAX_ABSOLUTE_TOTAL = 1e20


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Consolidated incidences (display order), statistics, and each incidence's sorted lines.

    The lines of all incidences live in one flat Int32 column; `spans` maps a key to its
    (offset, count) in it. Drill-down storage reads them with `lines_for`.
    """

    incidences: tuple[Incidence, ...]
    statistics: Statistics
    all_lines: pl.Series = field(repr=False)
    spans: Mapping[str, tuple[int, int]] = field(repr=False)

    def lines_for(self, key: str) -> pl.Series:
        """Every line of an incidence, ascending."""
        offset, count = self.spans[key]
        return self.all_lines.slice(offset, count)


def evaluate(
    movements: pl.DataFrame,
    reference: ReferenceData,
    has_document_type: bool,
    fetch_rows: FetchRows | None = None,
    max_incidences: int | None = None,
) -> Evaluation:
    """Run every applicable rule over a whole ledger's narrow movements and consolidate.

    `movements` is the concatenation of `ledger_reader.narrow` batches. The few values the
    narrow frame leaves out (FETCH_COLUMNS: texts of duplicate candidates, the account name of
    an incidence's first movement, the reason of the first rejected row) are asked of
    `fetch_rows` in one call, unless `movements` carries those columns itself.

    More than `max_incidences` raises TooManyIncidences as soon as the rules' groups are
    counted, before any incidence object, line column or document is built from them.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in movements.columns]
    if missing:
        raise ValueError(f"movements lack columns: {', '.join(missing)}")
    if not movements["line"].is_sorted():
        movements = movements.sort("line")
    check_totals_fit(movements)
    rules = [r for r in RULES if has_document_type or r.type not in DOCUMENT_TYPE_RULES]
    skipped = tuple(r.type.value for r in RULES if r not in rules)
    empty_lines = pl.Series("line", [], dtype=pl.Int32)
    ctx = RuleContext(reference, unbalanced_vouchers(movements), empty_lines)
    candidates = duplicate_candidates(movements)
    row_rules = [r for r in rules if r.type is not IncidenceType.DUPLICATE_MOVEMENT]
    masks = movements.select(
        VALID.alias("_valid"), *(r.caught(ctx).fill_null(False).alias(r.type) for r in row_rules)
    )
    hits: list[RuleHits] = []
    for rule in row_rules:  # counted rule by rule: a blow-up stops at the first rule past it
        hits.append(aggregate_hits(movements, masks[rule.type], rule))
        _check_count(hits, max_incidences)

    extras = _extras(movements, _lines_to_fetch(hits, candidates, reference), fetch_rows)
    duplicate = next((r for r in rules if r.type is IncidenceType.DUPLICATE_MOVEMENT), None)
    if duplicate is not None:
        ctx = dataclasses.replace(ctx, duplicate_lines=confirm_duplicates(candidates, extras))
        mask = movements.select(duplicate.caught(ctx).alias(duplicate.type)).to_series()
        masks = masks.with_columns(mask)
        hits.append(aggregate_hits(movements, mask, duplicate))
        _check_count(hits, max_incidences)

    found, all_lines, spans = build_incidences(hits, reference, extras)
    incidences = tuple(sorted(found, key=display_order))
    statistics = _statistics(movements, masks, rules, incidences, skipped)
    return Evaluation(incidences, statistics, all_lines, MappingProxyType(spans))


def check_totals_fit(movements: pl.DataFrame) -> None:
    """Refuse ledgers whose absolute amount total could overflow exact Decimal sums."""
    extremes = movements.select(
        pl.max_horizontal(
            pl.col("debit").max().abs(),
            pl.col("debit").min().abs(),
            pl.col("credit").max().abs(),
            pl.col("credit").min().abs(),
        ).cast(pl.Float64)
    ).item()
    # Cheap bound first: rows x largest magnitude; the exact-ish float sum only when needed.
    if extremes is None or 2 * movements.height * extremes < MAX_ABSOLUTE_TOTAL:
        return
    magnitude = movements.select(
        pl.col("debit").cast(pl.Float64).abs().sum() + pl.col("credit").cast(pl.Float64).abs().sum()
    ).item()
    if magnitude >= MAX_ABSOLUTE_TOTAL:
        raise AmountOverflow(
            f"The ledger's amounts add up to about {magnitude:.3g}, beyond the supported 1e20"
        )


def _check_count(hits: Sequence[RuleHits], limit: int | None) -> None:
    """One incidence per group: refuse before building them when there are too many."""
    found = sum(h.groups.height for h in hits)
    if limit is not None and found > limit:
        raise TooManyIncidences(found, limit)


def _lines_to_fetch(
    hits: Sequence[RuleHits], candidates: pl.DataFrame, reference: ReferenceData
) -> pl.Series:
    """Duplicate candidates, plus the first line of incidences whose name or reason is needed."""
    wanted = [candidates["line"]]
    for rule_hits in hits:
        rule, frame = rule_hits.rule, rule_hits.groups
        if rule.type is IncidenceType.ROW_INVALID:
            wanted.append(frame["first_line"])
        elif rule.element_kind is ElementKind.ACCOUNT:
            named = pl.Series(
                [c for c, a in reference.accounts.items() if not blank(a.name)], dtype=pl.String
            )
            wanted.append(frame.filter(~pl.col("code").is_in(named.implode()))["first_line"])
    return pl.concat([w.cast(pl.Int32) for w in wanted]).unique().sort()


def _extras(
    movements: pl.DataFrame, lines: pl.Series, fetch_rows: FetchRows | None
) -> pl.DataFrame:
    schema = pl.Schema({"line": pl.Int32(), **{c: pl.String() for c in FETCH_COLUMNS}})
    if all(c in movements.columns for c in FETCH_COLUMNS):
        wanted = lines.to_frame("line")
        return movements.select(schema.names()).join(wanted, on="line", how="semi").cast(schema)
    if lines.is_empty():
        return pl.DataFrame(schema=schema)
    if fetch_rows is None:
        raise ValueError(
            "evaluate() needs fetch_rows, or movements carrying "
            f"{', '.join(FETCH_COLUMNS)}, to name incidences and confirm duplicates"
        )
    return fetch_rows(lines).select(schema.names()).cast(schema)


def _statistics(
    movements: pl.DataFrame,
    masks: pl.DataFrame,
    rules: Sequence[Rule],
    incidences: Sequence[Incidence],
    skipped: tuple[str, ...],
) -> Statistics:
    severity_masks = {
        sev.value: [pl.col(r.type) for r in rules if r.severity is sev] for sev in Severity
    }
    counts = masks.select(
        (~pl.col("_valid")).sum().alias("rejected"),
        (pl.col("_valid") & pl.any_horizontal(*(pl.col(r.type) for r in rules)))
        .sum()
        .alias("caught"),
        *(
            pl.any_horizontal(*exprs).sum().alias(sev) if exprs else pl.lit(0).alias(sev)
            for sev, exprs in severity_masks.items()
        ),
    ).row(0, named=True)
    # Totals over valid rows = all rows minus rejected ones (few), so nothing large is copied.
    totals = movements.select(pl.col("debit").sum(), pl.col("credit").sum()).row(0)
    rejected = (
        (movements.lazy().filter(~VALID).select(pl.col("debit").sum(), pl.col("credit").sum()))
        .collect()
        .row(0)
    )
    per_type: dict[str, list[int]] = {r.type.value: [0, 0] for r in rules}
    per_severity = dict.fromkeys((sev.value for sev in Severity), 0)
    for incidence in incidences:
        per_type[incidence.type][0] += 1
        per_type[incidence.type][1] += incidence.movement_count
        per_severity[incidence.severity] += 1
    by_type = {name: Tally(n, movements_) for name, (n, movements_) in per_type.items()}
    by_severity = {sev: Tally(n, counts[sev]) for sev, n in per_severity.items()}
    return Statistics(
        movements_total=movements.height,
        movements_rejected=counts["rejected"],
        movements_with_incidences=counts["caught"],
        incidences_total=len(incidences),
        debit_total=difference(totals[0] or Decimal(0), rejected[0] or Decimal(0)),
        credit_total=difference(totals[1] or Decimal(0), rejected[1] or Decimal(0)),
        by_type=MappingProxyType(by_type),
        by_severity=MappingProxyType(by_severity),
        rules_skipped=skipped,
    )
