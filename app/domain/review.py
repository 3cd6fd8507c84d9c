"""Reviews of incidences (SPEC §10): an analyst acknowledges an incidence of a closing by key,
with a note; the review carries over to later iterations while the key persists, is shown on
every snapshot incidence, and gates the close of the month.

A review applies to the key's current run of iterations only: when the key was resolved and
came back, its `first_seen_iteration` is later than the iteration the review was made on, and
the incidence starts `open` again. An acknowledgement is `stale` once the incidence's
movement count or totals differ from those it was acknowledged with.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.domain.amounts import format_amount
from app.domain.snapshot import content_hash

ACKNOWLEDGED = "acknowledged"
OPEN = "open"
STATUSES = (OPEN, ACKNOWLEDGED)


@dataclass(frozen=True)
class Review:
    """A stored review of one key of a closing, with the figures it was made against."""

    key: str
    status: str
    note: str | None
    by: str
    at: dt.datetime
    iteration: int  # the snapshot's iteration when the review was made
    movement_count: int
    debit_total: Decimal
    credit_total: Decimal


def _figures(incidence: Mapping[str, Any]) -> tuple[int, str, str]:
    return (
        int(incidence["movement_count"]),
        str(incidence["debit_total"]),
        str(incidence["credit_total"]),
    )


def applies(review: Review | None, incidence: Mapping[str, Any]) -> bool:
    """Whether the review belongs to the incidence's current run (not to an earlier run of a
    key that was resolved since)."""
    return review is not None and review.iteration >= int(incidence["first_seen_iteration"])


def review_member(review: Review | None, incidence: Mapping[str, Any]) -> dict[str, Any]:
    """The `review` shown on a snapshot incidence."""
    if review is None or not applies(review, incidence):
        return {"status": OPEN, "note": None, "by": None, "at": None, "stale": False}
    acknowledged_with = (
        review.movement_count,
        format_amount(review.debit_total),
        format_amount(review.credit_total),
    )
    return {
        "status": review.status,
        "note": review.note,
        "by": review.by,
        "at": review.at.isoformat(),
        "stale": review.status == ACKNOWLEDGED and acknowledged_with != _figures(incidence),
    }


def unreviewed_errors(
    incidences: Iterable[Mapping[str, Any]], reviews: Mapping[str, Review]
) -> list[str]:
    """Keys of error incidences neither acknowledged (in their current run) nor resolved: what
    keeps a month from being closed."""
    return [
        incidence["key"]
        for incidence in incidences
        if incidence["severity"] == "error"
        and not (
            applies(review := reviews.get(incidence["key"]), incidence)
            and review is not None
            and review.status == ACKNOWLEDGED
        )
    ]


def with_reviews(document: Mapping[str, Any], reviews: Mapping[str, Review]) -> dict[str, Any]:
    """The snapshot document as served: each incidence with its `review`, and the statistics
    with how many incidences are open and acknowledged (and how many of those are stale)."""
    incidences = [
        {**incidence, "review": review_member(reviews.get(incidence["key"]), incidence)}
        for incidence in document["incidences"]
    ]
    acknowledged = [i for i in incidences if i["review"]["status"] == ACKNOWLEDGED]
    counts = {
        OPEN: len(incidences) - len(acknowledged),
        ACKNOWLEDGED: len(acknowledged),
        "stale": sum(1 for i in acknowledged if i["review"]["stale"]),
    }
    statistics = {**document["statistics"], "reviews": counts}
    return {**document, "statistics": statistics, "incidences": incidences}


def reviewed(document: Mapping[str, Any], reviews: Mapping[str, Review]) -> dict[str, Any]:
    """The snapshot document with reviews (`with_reviews`) and a content hash that covers
    them: a review changes the snapshot's ETag. An iteration's own document is this with no
    reviews, every incidence open."""
    served = with_reviews(document, reviews)
    served["content_hash"] = content_hash(
        served["closing_id"], served["iteration"], served["statistics"], served["incidences"]
    )
    return served
