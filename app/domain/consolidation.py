"""Consolidation: one incidence per (rule, element code) out of the movements a rule caught."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

import polars as pl

from app.domain.catalog import ElementKind, incidence_key
from app.domain.incidence import SAMPLE_LINES, Element, Incidence
from app.domain.reference import ReferenceData, blank
from app.domain.rules import MessageFacts, Rule

# Below this share of caught rows, filtering the hits beats grouping the whole frame.
_FILTER_SHARE = 0.25
_AGGREGATES = (
    pl.len().alias("movement_count"),
    pl.col("debit").sum().alias("debit_total"),
    pl.col("credit").sum().alias("credit_total"),
    pl.col("date").min().alias("first_date"),
    pl.col("date").max().alias("last_date"),
    pl.col("line").min().alias("first_line"),
)


@dataclass(frozen=True)
class RuleHits:
    """A rule's consolidated groups (one row per element code) and all its caught lines.

    `lines` holds the caught lines grouped by code in the order of `groups` and ascending within
    a code, so group n owns lines[offset_n : offset_n + movement_count_n]. Lists per group would
    cost Polars far more memory than this flat Int32 column.
    """

    rule: Rule
    groups: pl.DataFrame
    lines: pl.Series


class _Group(NamedTuple):
    """One consolidated group of a rule's hits (a row of RuleHits.groups)."""

    code: str
    movement_count: int
    debit_total: Decimal | None
    credit_total: Decimal | None
    first_date: dt.date | None
    last_date: dt.date | None
    first_line: int
    sample_lines: list[int]


# A group whose first line has no fetched values (neither a name nor a reason is needed).
_NO_VALUES: tuple[None, None] = (None, None)


def aggregate_hits(movements: pl.DataFrame, caught: pl.Series, rule: Rule) -> RuleHits:
    """Per element code: count, totals, date range, first line and the caught lines."""
    hits = int(caught.sum())
    # Lazy on purpose: eager group_by materialises every column; lazy projects what it needs.
    frame = movements.lazy().with_columns(caught.alias("_caught"))
    # Each group's lines in one aggregation: group_by keeps the row (= line) order within a
    # group, so this replaces a stable sort by code, which costs ~50x more on categoricals.
    aggregates = (*_AGGREGATES, pl.col("line").alias("_lines"))
    if hits < _FILTER_SHARE * movements.height:
        code = rule.code().alias("code")
        groups = frame.filter(pl.col("_caught")).group_by(code).agg(*aggregates).collect()
        # Grouping no rows by a literal code (one-group rules) still yields one empty group.
        groups = groups.filter(pl.col("movement_count") > 0)
    else:
        # Most rows are caught: group everything on a code that is null for the others,
        # instead of copying nearly the whole frame, and drop the null group (after collect,
        # so that the optimiser cannot push that filter down into a copy).
        code = pl.when(pl.col("_caught")).then(rule.code()).alias("code")
        groups = frame.group_by(code).agg(*aggregates).collect()
        groups = groups.filter(pl.col("code").is_not_null())
    lines = groups.get_column("_lines").explode().alias("line")
    grouped = groups.select(
        rule.label(pl.col("code")).alias("code"),
        pl.col("_lines").list.head(SAMPLE_LINES).alias("sample_lines"),
        *(aggregate.meta.output_name() for aggregate in _AGGREGATES),
    )
    return RuleHits(rule, grouped, lines)


def build_incidences(
    hits: Sequence[RuleHits], reference: ReferenceData, extras: pl.DataFrame
) -> tuple[list[Incidence], pl.Series, dict[str, tuple[int, int]]]:
    """Incidences of every rule's groups, the flat line column, and each key's (offset, count)."""
    # Only the incidences' first lines matter here (extras also holds duplicate candidates).
    first_lines = pl.concat(
        [h.groups["first_line"].cast(pl.Int32) for h in hits] or [pl.Series([], dtype=pl.Int32)]
    )
    wanted = extras.join(first_lines.to_frame("line"), on="line", how="semi")
    # (account_name, invalid_reason) by line, column by column: per-row dicts cost more.
    first_values = dict(
        zip(
            wanted["line"].to_list(),
            zip(wanted["account_name"].to_list(), wanted["invalid_reason"].to_list(), strict=True),
            strict=True,
        )
    )
    incidences: list[Incidence] = []
    spans: dict[str, tuple[int, int]] = {}
    base = 0
    for rule_hits in hits:
        make = _IncidenceMaker(rule_hits.rule, reference)
        for row in rule_hits.groups.select(_Group._fields).iter_rows():
            group = _Group._make(row)
            incidence = make(group, first_values.get(group.first_line, _NO_VALUES))
            incidences.append(incidence)
            spans[incidence.key] = (base, incidence.movement_count)
            base += incidence.movement_count
    parts = [h.lines for h in hits]
    flat = pl.concat(parts) if parts else pl.Series("line", [], dtype=pl.Int32)
    return incidences, flat, spans


class _IncidenceMaker:
    """Builds one rule's incidences; rule constants are resolved once, not per group."""

    def __init__(self, rule: Rule, reference: ReferenceData) -> None:
        self.rule = rule
        self.reference = reference
        self.type = rule.type.value
        self.severity = rule.severity.value
        self.kind = rule.element_kind
        self.dated = rule.element_kind is not ElementKind.COLUMN  # ROW_INVALID has no dates

    def __call__(self, group: _Group, first: tuple[str | None, str | None]) -> Incidence:
        """The incidence of one group; `first` is its first movement's account name and
        reason for being rejected."""
        first_name, first_reason = first
        code = group.code
        name = _element_name(self.kind, code, first_name, self.reference)
        debit = group.debit_total or Decimal(0)
        credit = group.credit_total or Decimal(0)
        facts = MessageFacts(
            code=code,
            name=name,
            debit_total=debit,
            credit_total=credit,
            period=self.reference.period,
            first_line=group.first_line,
            first_reason=first_reason,
        )
        return Incidence(
            key=incidence_key(self.type, code),
            type=self.type,
            severity=self.severity,
            element=Element(self.kind.value, code, name),
            message=self.rule.message(facts),
            movement_count=group.movement_count,
            debit_total=debit,
            credit_total=credit,
            first_date=group.first_date if self.dated else None,
            last_date=group.last_date if self.dated else None,
            sample_lines=tuple(group.sample_lines),
        )


def _element_name(
    kind: ElementKind, code: str, first_name: str | None, reference: ReferenceData
) -> str | None:
    """Chart name of an account (else its first movement's account_name); client doc type name."""
    if kind is ElementKind.ACCOUNT:
        account = reference.accounts.get(code)
        name = account.name if account is not None and not blank(account.name) else first_name
        return None if blank(name) else name
    if kind is ElementKind.DOCUMENT_TYPE:
        return reference.document_types.get(code) or None
    return None
