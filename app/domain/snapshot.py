"""The snapshot document and its canonical JSON / content hash (SPEC §2, §4), the entry a
cache serves, and filtered/paged views of it (GET /incidences with `type`, `severity`,
`limit`, `offset`), made from a ViewIndex so that a document is parsed once per version.

`content_hash` is the sha256 (hex) of the canonical JSON of the snapshot's content:
{"closing_id", "iteration", "statistics", "incidences"} — every field of the document except
`computed_at` and `content_hash` itself. `computed_at` is fixed once per iteration, so it never
changes without `iteration` changing too; leaving it out makes the hash a pure function of the
result, so re-publishing the same result (a retried publish, a cache rebuild) yields the same
ETag. Canonical JSON: UTF-8, keys sorted at every level, no insignificant whitespace, amounts as
canonical decimal strings, dates as ISO strings.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import itertools
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import orjson

from app.domain.amounts import format_amount
from app.domain.incidence import Incidence, IncidenceLike
from app.domain.statistics import Statistics


def canonical_json(document: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, compact, Decimals as canonical strings."""
    return orjson.dumps(document, default=_encode, option=orjson.OPT_SORT_KEYS)


def content_hash(
    closing_id: Any,
    iteration: int,
    statistics: Statistics | Mapping[str, Any],
    incidences: Sequence[IncidenceLike],
) -> str:
    """sha256 hex of the canonical JSON of the snapshot content (see module docstring)."""
    return _digest(closing_id, iteration, _plain(statistics), [_plain(i) for i in incidences])


def unhashed_snapshot(
    closing_id: Any,
    iteration: int,
    statistics: Statistics | Mapping[str, Any],
    incidences: Sequence[IncidenceLike],
    computed_at: dt.datetime,
) -> dict[str, Any]:
    """The snapshot document {closing_id, iteration, computed_at, statistics, incidences},
    JSON-ready, without its content_hash: review.reviewed adds the reviews and hashes the
    result (each hash of a big ledger's document is a serialisation of it: done once)."""
    return {
        "closing_id": closing_id,
        "iteration": iteration,
        "computed_at": computed_at.isoformat(),
        "statistics": _plain(statistics),
        "incidences": [_plain(i) for i in incidences],
    }


def _digest(closing_id: Any, iteration: int, statistics: Any, incidences: list[Any]) -> str:
    content = {
        "closing_id": closing_id,
        "iteration": iteration,
        "statistics": statistics,
        "incidences": incidences,
    }
    return hashlib.sha256(canonical_json(content)).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, Incidence | Statistics):
        return value.to_dict()
    return value


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format_amount(value)
    if isinstance(value, Incidence | Statistics):
        return value.to_dict()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | set | frozenset):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class SnapshotEntry:
    """A snapshot (or a filtered view of it) ready to send: the body, its gzip representation
    (compressed once, when the entry is made, for every client that accepts it), the version
    and content hash it belongs to, and its client (invalidation by client needs it)."""

    version: int
    content_hash: str
    client_id: str
    body: bytes
    gzip: bytes | None = None  # None: too small to gain from it


GZIP_LEVEL = 6
# Compressing or inflating more than this is done off the event loop (zlib frees the GIL).
OFF_LOOP_BYTES = 64 * 1024


def with_gzip(entry: SnapshotEntry, min_bytes: int) -> SnapshotEntry:
    """The entry with its gzip representation, unless it has one or is smaller than
    `min_bytes` (or compressing would not save). mtime=0: the same body, the same bytes."""
    if entry.gzip is not None or len(entry.body) < min_bytes:
        return entry
    packed = gzip.compress(entry.body, GZIP_LEVEL, mtime=0)
    return replace(entry, gzip=packed) if len(packed) < len(entry.body) else entry


@dataclass(frozen=True)
class SnapshotQuery:
    """Filters and paging of a snapshot read; the default is the whole snapshot."""

    type: str | None = None
    severity: str | None = None
    limit: int | None = None
    offset: int = 0
    review: str | None = None  # open | acknowledged

    def is_whole(self) -> bool:
        """True when the query asks for the snapshot as it is."""
        return self == WHOLE

    def view_id(self) -> str:
        """Cache name of the view ("" for the whole snapshot)."""
        return "" if self.is_whole() else hashlib.sha256(repr(self).encode()).hexdigest()[:16]

    def etag(self, content_hash: str) -> str:
        """The snapshot hash, varied by the query so each view has its own validator."""
        view = self.view_id()
        return f'"{content_hash}.{view}"' if view else f'"{content_hash}"'


WHOLE = SnapshotQuery()


# The filters of a view: the SnapshotQuery field, and the incidence's value it must equal.
VIEW_FILTERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "type": lambda incidence: incidence["type"],
    "severity": lambda incidence: incidence["severity"],
    # A document stored before reviews existed has none: all its incidences are open.
    "review": lambda incidence: incidence.get("review", {}).get("status", "open"),
}
_Filter = tuple[str | None, ...]  # one value per VIEW_FILTERS entry, None matching any


@dataclass(frozen=True)
class ViewIndex:
    """A snapshot document taken apart once, so that any view of it is cheap: its members but
    the incidences, each incidence's JSON, and for every combination of filter values the
    positions of the incidences it keeps."""

    members: dict[str, Any]
    incidences: list[bytes]
    positions: dict[_Filter, array[int]]

    @property
    def size(self) -> int:
        """Bytes held, roughly (for a cache bounded by size)."""
        return sum(map(len, self.incidences)) + 100 * len(self.incidences)


def view_index(document: bytes) -> ViewIndex:
    """Parse a snapshot document into its ViewIndex (the costly part: run it off the loop)."""
    members = orjson.loads(document)
    incidences = members["incidences"]
    members["incidences"] = None  # the key keeps its place: views are laid out like documents
    positions: dict[_Filter, array[int]] = {}
    for at, incidence in enumerate(incidences):
        values = [(None, value(incidence)) for value in VIEW_FILTERS.values()]
        for key in itertools.product(*values):  # every filter this incidence passes
            positions.setdefault(key, array("i")).append(at)
    return ViewIndex(members, [orjson.dumps(i) for i in incidences], positions)


def indexed_view(index: ViewIndex, query: SnapshotQuery) -> bytes:
    """The view of the indexed document: cheap (its incidences are copied, never parsed)."""
    key = tuple(getattr(query, name) for name in VIEW_FILTERS)
    selected = index.positions.get(key, array("i"))
    end = None if query.limit is None else query.offset + query.limit
    view = dict(index.members)
    view["incidences"] = [
        orjson.Fragment(index.incidences[at]) for at in selected[query.offset : end]
    ]
    view["page"] = {"total": len(selected), "offset": query.offset, "limit": query.limit}
    return orjson.dumps(view)
