"""Consolidated incidences: the frozen value objects and their JSON shape (SPEC §4)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.domain.amounts import format_amount, parse_amount_text
from app.domain.catalog import Severity

SAMPLE_LINES = 5


@dataclass(frozen=True)
class Element:
    """What an incidence is about: kind, code and display name (when one is known)."""

    kind: str
    code: str
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON shape: {kind, code, name}."""
        return {"kind": self.kind, "code": self.code, "name": self.name}


@dataclass(frozen=True)
class Incidence:
    """One consolidated incidence: every movement caught by one rule for one element."""

    key: str
    type: str
    severity: str
    element: Element
    message: str
    movement_count: int
    debit_total: Decimal
    credit_total: Decimal
    first_date: dt.date | None
    last_date: dt.date | None
    sample_lines: tuple[int, ...]
    first_seen_iteration: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The public JSON shape: amounts as canonical decimal strings, dates as ISO strings."""
        return {
            "key": self.key,
            "type": self.type,
            "severity": self.severity,
            "element": self.element.to_dict(),
            "message": self.message,
            "movement_count": self.movement_count,
            "debit_total": format_amount(self.debit_total),
            "credit_total": format_amount(self.credit_total),
            "first_date": self.first_date.isoformat() if self.first_date else None,
            "last_date": self.last_date.isoformat() if self.last_date else None,
            "sample_lines": list(self.sample_lines),
            "first_seen_iteration": self.first_seen_iteration,
        }

    def with_first_seen(self, iteration: int | None) -> Incidence:
        """A copy with first_seen_iteration set (dataclasses.replace re-runs __init__, and
        copy.copy goes through __reduce_ex__: both several times slower on the thousands of
        incidences of a big ledger than filling a bare instance's __dict__)."""
        clone = object.__new__(Incidence)
        clone.__dict__.update(self.__dict__, first_seen_iteration=iteration)
        return clone

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Incidence:
        """Rebuild an incidence from its JSON shape (e.g. a stored snapshot)."""
        element = data["element"]
        return cls(
            key=data["key"],
            type=data["type"],
            severity=data["severity"],
            element=Element(element["kind"], element["code"], element.get("name")),
            message=data["message"],
            movement_count=int(data["movement_count"]),
            debit_total=parse_amount_text(data["debit_total"]),
            credit_total=parse_amount_text(data["credit_total"]),
            first_date=_date(data.get("first_date")),
            last_date=_date(data.get("last_date")),
            sample_lines=tuple(data.get("sample_lines", ())),
            first_seen_iteration=data.get("first_seen_iteration"),
        )


IncidenceLike = Incidence | Mapping[str, Any]


def as_incidence(item: IncidenceLike) -> Incidence:
    """Accept an Incidence or its JSON shape."""
    return item if isinstance(item, Incidence) else Incidence.from_dict(item)


def display_order(incidence: Incidence) -> tuple[int, int, str]:
    """Sort key: errors first, then movement_count descending, then key."""
    return (
        0 if incidence.severity == Severity.ERROR else 1,
        -incidence.movement_count,
        incidence.key,
    )


def _date(value: str | dt.date | None) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)
