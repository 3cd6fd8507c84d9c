"""The ten incidence rules of SPEC §4: which movements each one catches, and under which code.

Every rule reads the narrow movement frame (see `ledger_reader.NARROW_SCHEMA`). A rule is a
boolean expression (is this movement caught?), an expression for the element code it is
consolidated under, and a message. Rejected rows (ROW_INVALID) take part in no other rule, so
every other rule starts from VALID. The two voucher-level rules need whole-ledger facts first
(unbalanced vouchers, confirmed duplicate lines), handed in through RuleContext.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import polars as pl

from app.domain.amounts import difference, format_amount
from app.domain.catalog import (
    ELEMENT_KIND,
    SEVERITY,
    ElementKind,
    IncidenceType,
    Severity,
)
from app.domain.reference import ReferenceData

VALID = pl.col("invalid_field").is_null()
ZERO = pl.lit(0)


@dataclass(frozen=True)
class RuleContext:
    """Whole-ledger facts rules compare movements against."""

    reference: ReferenceData
    unbalanced_vouchers: pl.Series
    duplicate_lines: pl.Series


@dataclass(frozen=True)
class MessageFacts:
    """What a message may mention about one consolidated incidence."""

    code: str
    name: str | None
    debit_total: Decimal
    credit_total: Decimal
    period: str
    first_line: int
    first_reason: str | None


@dataclass(frozen=True)
class Rule:
    """One incidence rule: caught movements, their element code, and the incidence message."""

    type: IncidenceType
    caught: Callable[[RuleContext], pl.Expr]
    code: Callable[[], pl.Expr]
    message: Callable[[MessageFacts], str]
    # `code` groups in a compact type (categorical, date, small int); `label` turns the grouped
    # value into the element code text, on the consolidated (small) frame only.
    label: Callable[[pl.Expr], pl.Expr] = lambda code: code.cast(pl.String)

    @property
    def severity(self) -> Severity:
        """The catalog severity of this rule's incidences."""
        return SEVERITY[self.type]

    @property
    def element_kind(self) -> ElementKind:
        """The catalog element kind of this rule's incidences."""
        return ELEMENT_KIND[self.type]


def _texts(values: list[str]) -> pl.Series:
    return pl.Series(values, dtype=pl.String).implode()


def _account_label(facts: MessageFacts) -> str:
    return f"{facts.code} ({facts.name})" if facts.name else facts.code


def _in_chart(ctx: RuleContext) -> pl.Expr:
    return pl.col("account_code").is_in(_texts(list(ctx.reference.accounts)))


# AMOUNT_INVALID checks in this order: a negative side, else both sides, else neither.
_NEGATIVE = (pl.col("debit") < ZERO) | (pl.col("credit") < ZERO)
_BOTH_SIDES = (pl.col("debit") > ZERO) & (pl.col("credit") > ZERO)
_ZERO = (pl.col("debit") == ZERO) & (pl.col("credit") == ZERO)
_AMOUNT_MESSAGES = {
    "negative": "Movements with a negative debit or credit",
    "both_sides": "Movements with both a debit and a credit",
    "zero": "Movements whose debit and credit are both zero",
}


def _out_of_period(ctx: RuleContext) -> pl.Expr:
    ref = ctx.reference
    return VALID & ((pl.col("date") < ref.period_start) | (pl.col("date") > ref.period_end))


def _unbalanced_message(facts: MessageFacts) -> str:
    gap = format_amount(abs(difference(facts.debit_total, facts.credit_total)))
    return (
        f"Voucher {facts.code} is unbalanced: debit {format_amount(facts.debit_total)}, "
        f"credit {format_amount(facts.credit_total)} (difference {gap})"
    )


RULES: tuple[Rule, ...] = (
    Rule(
        IncidenceType.ROW_INVALID,
        caught=lambda ctx: ~VALID,
        code=lambda: pl.col("invalid_field"),
        message=lambda f: (
            f"Column {f.code} has values that cannot be parsed; first at line {f.first_line}"
            + (f": {f.first_reason}" if f.first_reason else "")
        ),
    ),
    Rule(
        IncidenceType.ACCOUNT_NOT_IN_CHART,
        caught=lambda ctx: VALID & ~_in_chart(ctx),
        code=lambda: pl.col("account_code"),
        message=lambda f: f"Account {_account_label(f)} is not in the chart of accounts",
    ),
    Rule(
        IncidenceType.ACCOUNT_UNCLASSIFIED,
        caught=lambda ctx: (
            VALID & pl.col("account_code").is_in(_texts(ctx.reference.unclassified_codes()))
        ),
        code=lambda: pl.col("account_code"),
        message=lambda f: f"Account {_account_label(f)} has no classification",
    ),
    Rule(
        IncidenceType.ACCOUNT_MISSING_ENGLISH_NAME,
        caught=lambda ctx: (
            VALID & pl.col("account_code").is_in(_texts(ctx.reference.missing_english_codes()))
        ),
        code=lambda: pl.col("account_code"),
        message=lambda f: f"Account {_account_label(f)} has no English name",
    ),
    Rule(
        IncidenceType.DOCUMENT_TYPE_MISSING,
        caught=lambda ctx: VALID & pl.col("document_type").is_null(),
        code=lambda: pl.lit(0, pl.UInt8),
        message=lambda f: "Movements without a document type",
        label=lambda code: pl.lit(""),
    ),
    Rule(
        IncidenceType.DOCUMENT_TYPE_UNKNOWN,
        caught=lambda ctx: (
            VALID
            & pl.col("document_type").is_not_null()
            & ~pl.col("document_type").is_in(_texts(list(ctx.reference.document_types)))
        ),
        code=lambda: pl.col("document_type"),
        message=lambda f: f"Document type {f.code} is not among the client's document types",
    ),
    Rule(
        IncidenceType.MOVEMENT_OUT_OF_PERIOD,
        caught=_out_of_period,
        code=lambda: pl.col("date").dt.month_start(),
        message=lambda f: f"Movements dated {f.code} are outside the closing period {f.period}",
        label=lambda code: code.dt.to_string("%Y-%m"),
    ),
    Rule(
        IncidenceType.AMOUNT_INVALID,
        caught=lambda ctx: VALID & (_NEGATIVE | _BOTH_SIDES | _ZERO),
        code=lambda: (
            pl.when(_NEGATIVE)
            .then(pl.lit("negative"))
            .when(_BOTH_SIDES)
            .then(pl.lit("both_sides"))
            .otherwise(pl.lit("zero"))
        ),
        message=lambda f: _AMOUNT_MESSAGES[f.code],
    ),
    Rule(
        IncidenceType.VOUCHER_UNBALANCED,
        caught=lambda ctx: VALID & pl.col("voucher").is_in(ctx.unbalanced_vouchers.implode()),
        code=lambda: pl.col("voucher"),
        message=_unbalanced_message,
    ),
    Rule(
        IncidenceType.DUPLICATE_MOVEMENT,
        caught=lambda ctx: pl.col("line").is_in(ctx.duplicate_lines.implode()),
        code=lambda: pl.col("voucher"),
        message=lambda f: f"Voucher {f.code} has duplicated movements",
    ),
)


def unbalanced_vouchers(movements: pl.DataFrame) -> pl.Series:
    """Vouchers whose valid movements' debit sum differs from their credit sum (exactly)."""
    has_rejected = movements["invalid_field"].null_count() < movements.height
    # Grouping on a masked key (null for rejected rows) avoids copying the valid rows.
    voucher = pl.when(VALID).then(pl.col("voucher")) if has_rejected else pl.col("voucher")
    # Lazy on purpose: an eager group_by materialises every column of the frame.
    sums = (
        movements.lazy()
        .group_by(voucher.alias("voucher"))
        .agg(pl.col("debit").sum(), pl.col("credit").sum())
        .collect()
    )
    unbalanced = sums.filter(
        pl.col("voucher").is_not_null() & (pl.col("debit") != pl.col("credit"))
    )
    return unbalanced["voucher"].sort()
