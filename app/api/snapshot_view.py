"""GET /closings/{id}/incidences, once: the filters it accepts and its answer (200 or 304, with
its headers). The route and the warm-read fast lane (middleware/snapshot_reads.py) both answer
through here, so the two can never disagree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal
from urllib.parse import parse_qsl

from pydantic import BaseModel, Field, ValidationError

from app.api.encoding import accepts_gzip
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


def none_match(if_none_match: str, etags: tuple[str, ...]) -> bool:
    """Whether If-None-Match matches (RFC 9110 §13.1.2): `*` matches the current snapshot, and
    the comparison is weak, so a W/ tag (as compressing proxies rewrite ours) matches too. Any
    representation's tag of the current content matches (the content is what it validates)."""
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or not tags.isdisjoint(etags)


def gzip_etag(etag: str) -> str:
    """The ETag of the gzip representation of the content whose identity ETag is `etag`."""
    return f'{etag[:-1]}-gzip"'


def snapshot_headers(etag: str, outcome: str, gzip: bool) -> Headers:
    """Headers of a snapshot answer, 200 or 304 (the body's length and type aside)."""
    headers = [
        (b"cache-control", b"private, no-cache"),
        (b"etag", etag.encode()),
        (b"vary", b"Accept-Encoding"),
        (b"x-cache", outcome.encode()),
    ]
    return [*headers, (b"content-encoding", b"gzip")] if gzip else headers


def answer(
    served: Served,
    query: SnapshotQuery,
    if_none_match: str | None,
    accept_encoding: str | None,
    headers: Callable[[str, str, bool], Headers] = snapshot_headers,
) -> tuple[int, Headers, bytes]:
    """(status, headers, body) of a snapshot read: its gzip representation (compressed once,
    when the entry was made) to a client that accepts it, else its body; each representation
    with its own ETag. `headers` makes (or keeps ready) the answer's `snapshot_headers`."""
    entry = served.entry
    etag = query.etag(entry.content_hash)
    etags = (etag, gzip_etag(etag))
    gzip = entry.gzip is not None and accepts_gzip(accept_encoding)
    chosen = etags[1] if gzip else etag
    if if_none_match is not None and none_match(if_none_match, etags):
        without_encoding = headers(chosen, served.outcome, False)
        return 304, list(without_encoding), b""
    body = entry.gzip if gzip and entry.gzip is not None else entry.body
    length = (b"content-length", str(len(body)).encode())
    return 200, [*headers(chosen, served.outcome, gzip), length, _JSON], body
