"""CSV records as Python's `csv` module (and spreadsheet programs) read them, found with numpy.

The rules (the csv module's default dialect with our delimiter): a double quote opens a quoted
field only as the first character of a field; inside one, `""` is a quote and a lone `"` closes
it; after the closing quote the field goes on as ordinary text up to the next delimiter, its
quotes included. Anywhere else a quote is an ordinary character (`Tubo 5" PVC`). A record ends
at `\\n`, `\\r\\n` or a lone `\\r` outside quoted fields.

Only quotes decide where quoted fields are, so the work is one vectorised pass to find them,
then work proportional to the quotes: consecutive quotes form runs, and each run acts on the
"inside a quoted field" state in one of three ways (see `scan`), which a prefix count resolves
for all runs at once. This module is the one tokenizer of the service: the upload checks and
the worker's reader both cut records with `RecordSplitter`, so they never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.domain.errors import MalformedLedger, PayloadTooLarge
from app.domain.ledger.format import MAX_RECORD_BYTES

QUOTE = ord('"')
LF = ord("\n")
CR = ord("\r")
_NONE = np.zeros(0, dtype=np.int64)
_WINDOW = 1024 * 1024
Buffer = bytes | bytearray


class UnclosedQuote(MalformedLedger):
    """A quoted field is still open at the end of the file; `offset` is its opening quote."""

    def __init__(self, offset: int) -> None:
        super().__init__(
            f"A quoted field opened at byte {offset} is never closed (its opening double quote "
            "has no closing one), so the rest of the file would be read as part of it"
        )
        self.offset = offset


class RecordTooLong(PayloadTooLarge):
    """A record goes on for more than MAX_RECORD_BYTES; `offset` is where it starts, and
    `quote_offset` the quote that opened the field still open at the limit (if any)."""

    def __init__(self, offset: int, quote_offset: int | None, limit: int) -> None:
        super().__init__(
            f"The record starting at byte {offset} is longer than {limit} bytes"
            + (" (a quoted field in it is never closed?)" if quote_offset is not None else "")
        )
        self.offset = offset
        self.quote_offset = quote_offset
        self.limit = limit


@dataclass(frozen=True)
class QuoteRuns:
    """The runs of consecutive quotes of a buffer that starts at a record boundary."""

    starts: np.ndarray  # position of each run's first quote
    ends: np.ndarray  # position just past each run
    at_field_start: np.ndarray  # the run begins a field (after a delimiter or a terminator)
    inside_before: np.ndarray  # inside a quoted field before the run
    inside_after: np.ndarray  # ... and after it
    opens: np.ndarray  # where each quoted region begins (its opening quote)
    closes: np.ndarray  # just past each region's closing run (the buffer's end if still open)

    @property
    def open_at_end(self) -> bool:
        """The buffer ends inside a quoted field."""
        return bool(self.inside_after.size and self.inside_after[-1])

    def inside(self, positions: np.ndarray) -> np.ndarray:
        """Which of these sorted (non-quote) positions lie inside a quoted field. Costs one
        search per quoted field, plus a prefix sum over `positions` when some fall inside."""
        first = np.searchsorted(positions, self.opens)
        past = np.searchsorted(positions, self.closes)
        held = past > first
        if not held.any():
            return np.zeros(positions.shape, dtype=bool)
        size = positions.size + 1
        marks = np.bincount(first[held], minlength=size) - np.bincount(past[held], minlength=size)
        return np.cumsum(marks[:-1]) > 0

    def region_start(self, position: int) -> int | None:
        """The opening quote of the quoted field holding `position`, if any."""
        region = int(np.searchsorted(self.opens, position, side="right")) - 1
        if region >= 0 and position < self.closes[region]:
            return int(self.opens[region])
        return None

    def head(self, end: int) -> QuoteRuns:
        """The runs before `end`, a record boundary."""
        runs = int(np.searchsorted(self.starts, end))
        regions = int(np.searchsorted(self.opens, end))
        return QuoteRuns(
            self.starts[:runs],
            self.ends[:runs],
            self.at_field_start[:runs],
            self.inside_before[:runs],
            self.inside_after[:runs],
            self.opens[:regions],
            self.closes[:regions],
        )


_NO_RUNS = QuoteRuns(*(_NONE,) * 2, *(np.zeros(0, dtype=bool),) * 3, _NONE, _NONE)


def scan(buf: Buffer, delimiter: int) -> QuoteRuns:
    """The quote runs of `buf` (which starts at a record boundary) and the quoted regions.

    A run of k quotes, seen from outside a quoted field: at a field start it opens one and its
    other k-1 quotes are pairs (k odd: it stays open) or pairs and a close (k even); elsewhere
    its quotes are ordinary characters. Seen from inside: pairs, and a close when k is odd. So a
    run either toggles the state (at a field start, k odd), resets it to outside (elsewhere,
    k odd) or keeps it (k even): the state after a run is the parity of the toggles since the
    last reset."""
    if buf.find(b'"') < 0:
        return _NO_RUNS
    data = np.frombuffer(buf, dtype=np.uint8)
    # Positions as 32-bit integers (half the memory traffic of numpy's default) when they fit:
    # a file whose every field is quoted has some 20 quotes a row.
    position = np.dtype(np.int32 if data.size < 2**31 else np.int64)
    # A window at a time: a comparison of the whole buffer would hold a byte per byte of it.
    quotes = np.concatenate(
        [
            np.flatnonzero(data[at : at + _WINDOW] == QUOTE).astype(position) + at
            for at in range(0, data.size, _WINDOW)
        ]
    )
    breaks = np.flatnonzero(np.diff(quotes) != 1) + 1
    starts = quotes[np.concatenate(([0], breaks))]
    ends = quotes[np.concatenate((breaks - 1, [quotes.size - 1]))] + 1
    odd = ((ends - starts) & 1).astype(bool)
    before = data[np.maximum(starts - 1, 0)]
    at_start = (starts == 0) | (before == delimiter) | (before == LF) | (before == CR)
    toggles = np.cumsum(at_start & odd, dtype=position)
    # The toggles counted at the last reset: counts only grow, so the largest at a reset so far.
    at_reset = np.maximum.accumulate(np.where(~at_start & odd, toggles, 0))
    inside_after = np.bitwise_and(toggles - at_reset, 1).astype(bool)
    inside_before = np.concatenate(([False], inside_after[:-1]))
    closes = ends[inside_before & ~inside_after]
    if inside_after[-1]:
        closes = np.append(closes, len(buf))
    return QuoteRuns(
        starts,
        ends,
        at_start,
        inside_before,
        inside_after,
        starts[~inside_before & inside_after],
        closes,
    )


def last_record_end(buf: Buffer, runs: QuoteRuns) -> int:
    """The offset just past the last `\\n` outside quoted fields, or 0 (lone `\\r` terminators
    are made `\\n` first by `lone_crs_to_lf`)."""
    end = len(buf)
    while (newline := buf.rfind(b"\n", 0, end)) >= 0:
        opened = runs.region_start(newline)
        if opened is None:
            return newline + 1
        end = opened
    return 0


def first_record_end(buf: Buffer, runs: QuoteRuns) -> int:
    """The offset just past the first `\\n` outside quoted fields (the buffer's end if none)."""
    start = 0
    while (newline := buf.find(b"\n", start)) >= 0:
        opened = runs.region_start(newline)
        if opened is None:
            return newline + 1
        start = int(runs.closes[np.searchsorted(runs.opens, opened)])
    return len(buf)


def lone_crs_to_lf(buf: Buffer, runs: QuoteRuns, final: bool) -> Buffer:
    """`buf` with each lone `\\r` outside quoted fields made `\\n` (same length, so positions
    hold): the csv module ends records there, Polars does not. A `\\r` at the very end may be
    half of a `\\r\\n` unless the buffer is the last."""
    if buf.find(b"\r") < 0:
        return buf
    maybe_crlf = not final and buf.endswith(b"\r")  # its \n may come with the next bytes
    data = np.frombuffer(buf, dtype=np.uint8)
    count, pairs = _cr_counts(data)
    if count == pairs + maybe_crlf:  # \r\n only (what Windows programs write): nothing to do
        return buf
    crs = np.flatnonzero(data == CR)
    following = data[np.minimum(crs + 1, len(buf) - 1)]
    lone = np.where(crs + 1 < len(buf), following != LF, final)
    lone_crs = crs[lone]
    lone_crs = lone_crs[~runs.inside(lone_crs)]
    if not lone_crs.size:
        return buf
    fixed = data.copy()
    fixed[lone_crs] = LF
    return fixed.tobytes()


def line_ends(buf: Buffer) -> int:
    """Line ends as a text editor counts them (`\\n`, `\\r\\n` or a lone `\\r`, in quoted
    fields too)."""
    data = np.frombuffer(buf, dtype=np.uint8)
    ends = sum(
        int(np.count_nonzero(data[at : at + _WINDOW] == LF)) for at in range(0, data.size, _WINDOW)
    )
    if buf.find(b"\r") >= 0:
        crs, pairs = _cr_counts(data)
        ends += crs - pairs
    return ends


def _cr_counts(data: np.ndarray) -> tuple[int, int]:
    """How many `\\r` a buffer holds, and how many of them a `\\n` follows. numpy counts
    several times faster than bytes.count, whose two-byte search (`\\r\\n`) is slowest of all,
    on the CRLF files Windows programs write; a window at a time, as in `scan`."""
    crs = pairs = 0
    for at in range(0, data.size, _WINDOW):
        cr = data[at : at + _WINDOW] == CR
        followed = data[at + 1 : at + _WINDOW + 1] == LF  # one shorter at the buffer's end
        crs += int(np.count_nonzero(cr))
        pairs += int(np.count_nonzero(cr[: followed.size] & followed))
    return crs, pairs


@dataclass(frozen=True)
class Records:
    """Whole records of the stream: their bytes, quote runs and offset in the stream."""

    data: bytes
    runs: QuoteRuns
    offset: int


class RecordSplitter:
    """Cuts a byte stream into buffers of whole records.

    A buffer is scanned only once it holds at least twice the bytes of its last scan that found
    no record end, so a long record costs linear time; pending bytes stay under `max_record`."""

    def __init__(self, delimiter: str, max_record: int = MAX_RECORD_BYTES) -> None:
        self._delimiter = ord(delimiter)
        self._max_record = max_record
        self._parts: list[bytes | bytearray] = []
        self._size = 0
        self._scanned = 0  # size of the last scan that found no record end
        self.offset = 0  # stream offset of the first pending byte

    @property
    def pending(self) -> int:
        """Bytes held: the start of a record not ended yet (or not scanned yet)."""
        return self._size

    def push(self, data: bytes) -> Records | None:
        """Add bytes; the whole records they complete, if any."""
        if data:
            self._parts.append(data)
            self._size += len(data)
        if self._size < 2 * self._scanned and self._size <= self._max_record:
            return None
        buf = self._take()
        runs = scan(buf, self._delimiter)
        buf = lone_crs_to_lf(buf, runs, final=False)
        cut = last_record_end(buf, runs)
        if cut == 0:
            # Held as a bytearray, the record's start grows in place with the next bytes: a
            # join would hold it twice (a record may reach MAX_RECORD_BYTES).
            self._keep(buf if isinstance(buf, bytearray) else bytearray(buf))
            self._scanned = len(buf)
            if len(buf) > self._max_record:
                opened = runs.opens[-1] if runs.open_at_end else None
                raise RecordTooLong(
                    self.offset,
                    None if opened is None else self.offset + int(opened),
                    self._max_record,
                )
            return None
        self._keep(buf[cut:])
        self._scanned = 0
        records = Records(bytes(memoryview(buf)[:cut]), runs.head(cut), self.offset)
        self.offset += cut
        return records

    def finish(self) -> Records | None:
        """The last records (the final one may lack a terminator); UnclosedQuote if the stream
        ends inside a quoted field."""
        buf = self._take()
        if not buf:
            return None
        runs = scan(buf, self._delimiter)
        if runs.open_at_end:
            self._keep(buf)  # for the caller to tell where the quote is (see `held`)
            raise UnclosedQuote(self.offset + int(runs.opens[-1]))
        records = Records(bytes(lone_crs_to_lf(buf, runs, final=True)), runs, self.offset)
        self.offset += len(buf)
        return records

    def held(self) -> bytes | bytearray:
        """The bytes held (from `offset` on), without taking them (nor copying a long record's
        start, which is one part)."""
        return self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)

    def _take(self) -> bytes | bytearray:
        buf = self._parts[0] if self._parts else b""
        if isinstance(buf, bytearray):  # a long record's start (see `push`)
            for part in self._parts[1:]:
                buf += part
        elif len(self._parts) > 1:
            buf = b"".join(self._parts)
        self._parts = []
        self._size = 0
        return buf

    def _keep(self, tail: bytes | bytearray) -> None:
        if tail:
            self._parts = [tail]
            self._size = len(tail)
