"""Snapshot statistics (SPEC §4) and their JSON shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.domain.amounts import format_amount


@dataclass(frozen=True)
class Tally:
    """How many incidences, and how many movements they cover."""

    incidences: int
    movements: int

    def to_dict(self) -> dict[str, int]:
        """JSON shape: {incidences, movements}."""
        return {"incidences": self.incidences, "movements": self.movements}


@dataclass(frozen=True)
class Statistics:
    """Ledger-wide figures of one evaluation.

    by_type lists every evaluated type (zeros included; skipped rules are absent) with
    movements = sum of its incidences' movement_count. by_severity lists "error" and "warning"
    with movements = distinct rows caught by at least one rule of that severity, rejected rows
    included (ROW_INVALID is an error).
    """

    movements_total: int
    movements_rejected: int
    movements_with_incidences: int
    incidences_total: int
    debit_total: Decimal
    credit_total: Decimal
    by_type: Mapping[str, Tally]
    by_severity: Mapping[str, Tally]
    rules_skipped: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The public JSON shape."""
        return {
            "movements_total": self.movements_total,
            "movements_rejected": self.movements_rejected,
            "movements_with_incidences": self.movements_with_incidences,
            "incidences_total": self.incidences_total,
            "debit_total": format_amount(self.debit_total),
            "credit_total": format_amount(self.credit_total),
            "by_type": {k: v.to_dict() for k, v in self.by_type.items()},
            "by_severity": {k: v.to_dict() for k, v in self.by_severity.items()},
            "rules_skipped": list(self.rules_skipped),
        }
