"""GET /closings/{id}/incidences, once: the filters it accepts and its answer (200 or 304, with
its headers). The route and the warm-read fast lane (middleware/snapshot_reads.py) both answer
through here, so the two can never disagree."""

from __future__ import annotations

from typing import Literal
from urllib.parse import parse_qsl

from pydantic import BaseModel, Field, ValidationError

from app.domain.catalog import IncidenceType, Severity
from app.domain.snapshot import WHOLE, SnapshotQuery
from app.services.snapshot_cache.repository import Served

# Past any snapshot's end, and small enough to echo back in `page` (JSON integers are 64-bit).
MAX_OFFSET = 2**31 - 1
MAX_LIMIT = 10_000

Headers = list[tuple[bytes, bytes]]
_JSON = (b"content-type", b"application/json")


class SnapshotFilters(BaseModel):
    """The query parameters of a snapshot read."""

    type: IncidenceType | None = Field(None, description="Only incidences of this type")
    severity: Severity | None = Field(None, description="Only incidences of this severity")
    limit: int | None = Field(None, ge=1, le=MAX_LIMIT, description="Page size (default: all)")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Incidences to skip")
    review: Literal["open", "acknowledged"] | None = Field(
        None, description="Only incidences whose review has this status"
    )

    def query(self) -> SnapshotQuery:
        """The domain query (plain strings, so its cache name never depends on the caller)."""
        kind = self.type.value if self.type is not None else None
        severity = self.severity.value if self.severity is not None else None
        return SnapshotQuery(kind, severity, self.limit, self.offset, self.review)


_NAMES = frozenset(SnapshotFilters.model_fields)


def parse_fast(query_string: bytes) -> SnapshotQuery | None:
    """The query when the route would accept it as it is; None to let the route decide (and
    answer whatever it answers: a 422, say)."""
    if not query_string:
        return WHOLE
    try:
        pairs = parse_qsl(query_string.decode("ascii"), keep_blank_values=True)
    except UnicodeDecodeError:
        return None
    values = dict(pairs)
    if len(values) != len(pairs) or not values.keys() <= _NAMES or not all(values.values()):
        return None
    try:
        return SnapshotFilters.model_validate(values).query()
    except ValidationError:
        return None


def none_match(if_none_match: str, etag: str) -> bool:
    """Whether If-None-Match matches (RFC 9110 §13.1.2): `*` matches the current snapshot, and
    the comparison is weak, so a W/ tag (as compressing proxies rewrite ours) matches too."""
    tags = {tag.strip() for tag in if_none_match.split(",")}
    return "*" in tags or etag in {tag.removeprefix("W/") for tag in tags}


def snapshot_headers(etag: str, outcome: str) -> Headers:
    """Headers of a snapshot answer, 200 or 304 (the body's length and type aside)."""
    return [
        (b"cache-control", b"private, no-cache"),
        (b"etag", etag.encode()),
        (b"x-cache", outcome.encode()),
    ]


def answer(
    served: Served, query: SnapshotQuery, if_none_match: str | None, headers: Headers | None = None
) -> tuple[int, Headers, bytes]:
    """(status, headers, body) of a snapshot read; `headers` are this answer's
    `snapshot_headers`, when the caller keeps them ready."""
    etag = query.etag(served.entry.content_hash)
    if headers is None:
        headers = snapshot_headers(etag, served.outcome)
    if if_none_match is not None and none_match(if_none_match, etag):
        return 304, list(headers), b""
    body = served.entry.body
    return 200, [*headers, (b"content-length", str(len(body)).encode()), _JSON], body
