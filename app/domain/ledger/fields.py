"""Fields of CSV records, for the pieces Polars cannot read alone: non-standard quoting made
standard, the number of fields of each record, and whether some bytes hold any text.

Polars reads standard (RFC 4180) quoting exactly as the csv module does, but not a stray quote
inside an unquoted field (`Tubo 5" PVC`) nor text after a closing quote (`"abc" def`). Such a
piece is rewritten into standard quoting with the same values, all at once with numpy.
"""

from __future__ import annotations

import csv
import io

import numpy as np

from app.domain.ledger.records import CR, LF, QUOTE, QuoteRuns

_BLANK_BYTES = (ord(" "), ord("\t"), CR, LF)


def standard_quoting(data: bytes, runs: QuoteRuns, delimiter: int) -> bytes | None:
    """`data` (whole records) rewritten so that standard quoting gives the csv module's fields,
    or None when it already does.

    Ordinary quotes (not at a field start, outside quoted fields) are doubled and their field
    quoted; a closing quote followed by more text is dropped and the quote moved to the end of
    the field, whose rest is ordinary text (`"abc" d"e` → `"abc d""e"`)."""
    if not runs.starts.size:
        return None
    size = len(data)
    array = np.frombuffer(data, dtype=np.uint8)
    lengths = runs.ends - runs.starts
    odd = (lengths & 1).astype(bool)
    outside = ~runs.inside_before
    ordinary = outside & ~runs.at_field_start
    closing = (runs.inside_before & odd) | (outside & runs.at_field_start & ~odd)
    following = array[np.minimum(runs.ends, size - 1)]
    field_ends = (
        (runs.ends == size) | (following == delimiter) | (following == LF) | (following == CR)
    )
    text_after = closing & ~field_ends
    if not (ordinary.any() or text_after.any()):
        return None
    separators = _outside(array, runs, (delimiter, LF, CR))
    starts, counts = runs.starts[ordinary], lengths[ordinary]
    ordinary_quotes = np.repeat(starts, counts) + _offsets(counts)
    dropped = runs.ends[text_after] - 1
    # A field is named by the index of the separator that ends it.
    with_ordinary = np.searchsorted(separators, starts)
    reopened = np.searchsorted(separators, dropped)
    unquoted = np.setdiff1d(with_ordinary, reopened)
    rewritten = np.union1d(with_ordinary, reopened)
    inserts = np.sort(
        np.concatenate(
            (
                ordinary_quotes,  # a quote before each one doubles it
                np.concatenate(([-1], separators))[unquoted] + 1,  # the field's first byte
                np.append(separators, size)[rewritten],  # the closing quote of each field
            )
        )
    )
    inserts -= np.searchsorted(dropped, inserts)  # positions once the dropped quotes are gone
    return np.insert(np.delete(array, dropped), inserts, QUOTE).tobytes()


def record_bounds(data: bytes, runs: QuoteRuns) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets of each record of `data` (whole records, lone CRs made LF)."""
    array = np.frombuffer(data, dtype=np.uint8)
    ends = _outside(array, runs, (LF,)) + 1
    if not ends.size or ends[-1] != len(data):
        ends = np.append(ends, len(data))
    return np.concatenate(([0], ends[:-1])), ends


def delimiters_before(data: bytes, runs: QuoteRuns, delimiter: int) -> np.ndarray:
    """Positions of the delimiters outside quoted fields (sorted)."""
    return _outside(np.frombuffer(data, dtype=np.uint8), runs, (delimiter,))


def has_text(
    data: bytes, starts: np.ndarray, ends: np.ndarray, delimiter: str, encoding: str
) -> np.ndarray:
    """Whether each span of `data` (whole fields) holds a field with more than whitespace.

    Only spans the caller suspects are blank come here. Those of delimiters, blanks and line
    ends hold none; those with any other byte but a quote or a non-ASCII one hold some: told
    apart with numpy. The rest (quotes, perhaps a non-ASCII space such as NBSP) are read with
    the csv module one by one; past its field size limit (128 KiB) one is taken to hold text."""
    found = np.zeros(starts.size, dtype=bool)
    if not starts.size:
        return found
    spans = ends - starts
    gathered = np.frombuffer(data, dtype=np.uint8)[np.repeat(starts, spans) + _offsets(spans)]
    owner = np.repeat(np.arange(starts.size), spans)
    plain = np.isin(gathered, (ord(delimiter), *_BLANK_BYTES))
    unsure = (gathered == QUOTE) | (gathered >= 0x80)
    found[np.bincount(owner, weights=~plain & ~unsure, minlength=starts.size) > 0] = True
    unsure_spans = np.bincount(owner, weights=unsure, minlength=starts.size) > 0
    for index in np.flatnonzero(~found & unsure_spans):
        text = data[starts[index] : ends[index]].decode(encoding, errors="replace")
        rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        try:
            found[index] = any(value.strip() for row in rows for value in row)
        except csv.Error:
            found[index] = True
    return found


def _outside(array: np.ndarray, runs: QuoteRuns, values: tuple[int, ...]) -> np.ndarray:
    """Sorted positions of these byte values outside quoted fields."""
    mask = array == values[0]
    for value in values[1:]:
        mask |= array == value
    positions = np.flatnonzero(mask)
    return positions[~runs.inside(positions)] if runs.opens.size else positions


def _offsets(counts: np.ndarray) -> np.ndarray:
    """0..n-1 for each count n, concatenated."""
    total = int(counts.sum())
    return np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
