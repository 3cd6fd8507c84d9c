"""Diffs between the incidence sets of two iterations, and first_seen_iteration bookkeeping."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from app.domain.amounts import format_amount, parse_amount_text
from app.domain.incidence import Incidence, IncidenceLike, as_incidence


@dataclass(frozen=True)
class Totals:
    """The figures a diff compares: movement_count, debit_total, credit_total."""

    movement_count: int
    debit_total: Decimal
    credit_total: Decimal

    @classmethod
    def of(cls, incidence: IncidenceLike) -> Totals:
        """The compared figures of an incidence, or of its JSON shape (read directly: a whole
        Incidence rebuilt per incidence of a stored snapshot cost more than the diff itself)."""
        if isinstance(incidence, Incidence):
            return cls(incidence.movement_count, incidence.debit_total, incidence.credit_total)
        return cls(
            int(incidence["movement_count"]),
            parse_amount_text(incidence["debit_total"]),
            parse_amount_text(incidence["credit_total"]),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON shape, amounts as canonical decimal strings."""
        return {
            "movement_count": self.movement_count,
            "debit_total": format_amount(self.debit_total),
            "credit_total": format_amount(self.credit_total),
        }


@dataclass(frozen=True)
class Change:
    """An incidence present on both sides whose figures differ."""

    key: str
    before: Totals
    after: Totals

    def to_dict(self) -> dict[str, Any]:
        """JSON shape: {key, before, after}."""
        return {"key": self.key, "before": self.before.to_dict(), "after": self.after.to_dict()}


@dataclass(frozen=True)
class Diff:
    """What changed from iteration A (before) to B (after); every list is sorted by key."""

    new: tuple[str, ...]
    resolved: tuple[str, ...]
    changed: tuple[Change, ...]
    unchanged: int

    def to_dict(self) -> dict[str, Any]:
        """JSON shape: {new: [key], resolved: [key], changed: [...], unchanged: n}."""
        return {
            "new": list(self.new),
            "resolved": list(self.resolved),
            "changed": [c.to_dict() for c in self.changed],
            "unchanged": self.unchanged,
        }


def diff_incidences(before: Sequence[IncidenceLike], after: Sequence[IncidenceLike]) -> Diff:
    """Compare two incidence sets by key (amounts compare as numbers, not as text)."""
    old = {_key(i): Totals.of(i) for i in before}
    new = {_key(i): Totals.of(i) for i in after}
    both = sorted(old.keys() & new.keys())
    changed = tuple(Change(k, old[k], new[k]) for k in both if old[k] != new[k])
    return Diff(
        new=tuple(sorted(new.keys() - old.keys())),
        resolved=tuple(sorted(old.keys() - new.keys())),
        changed=changed,
        unchanged=len(both) - len(changed),
    )


# What a diff compares, in the order its before/after show them.
_FIGURES = ("movement_count", "debit_total", "credit_total")


def diff_documents(before: bytes, after: bytes, numbers: tuple[int, int]) -> bytes:
    """The JSON of the diff between two stored snapshot documents (SPEC §4), `from` and `to`
    being `numbers`. Pure bytes in, bytes out, so it can run in another process.

    Stored amounts are canonical text (format_amount), which depends only on the value: text
    equality is numeric equality here, and no Decimal needs to be built."""
    old, new = _figures(before), _figures(after)
    both = sorted(old.keys() & new.keys())
    changed = [
        {
            "key": key,
            "before": dict(zip(_FIGURES, old[key], strict=True)),
            "after": dict(zip(_FIGURES, new[key], strict=True)),
        }
        for key in both
        if old[key] != new[key]
    ]
    return orjson.dumps(
        {
            "from": numbers[0],
            "to": numbers[1],
            "new": sorted(new.keys() - old.keys()),
            "resolved": sorted(old.keys() - new.keys()),
            "changed": changed,
            "unchanged": len(both) - len(changed),
        }
    )


def _figures(document: bytes) -> dict[str, tuple[Any, ...]]:
    return {
        incidence["key"]: tuple(incidence[name] for name in _FIGURES)
        for incidence in orjson.loads(document)["incidences"]
    }


def assign_first_seen(
    incidences: Sequence[IncidenceLike],
    previous: Sequence[IncidenceLike] | None,
    iteration: int,
) -> list[Incidence]:
    """Set first_seen_iteration: carried over from the previous succeeded iteration when the key
    was there (an unbroken run), else this iteration (new, or back after being resolved)."""
    carried = {_key(old): _first_seen(old) for old in previous or ()}
    return [
        i.with_first_seen(carried.get(i.key) or iteration) for i in map(as_incidence, incidences)
    ]


def _key(incidence: IncidenceLike) -> str:
    return incidence.key if isinstance(incidence, Incidence) else incidence["key"]


def _first_seen(incidence: IncidenceLike) -> int | None:
    if isinstance(incidence, Incidence):
        return incidence.first_seen_iteration
    return incidence.get("first_seen_iteration")
