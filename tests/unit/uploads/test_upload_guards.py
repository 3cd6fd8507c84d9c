"""The upload's byte guards: records cut by the worker's tokenizer while the file arrives, a
quoted field never closed named by its line, bounds refused before the file is all in."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.domain.errors import MalformedLedger, PayloadTooLarge
from app.services.uploads.guards import ReceivedBytes, check_upload

HEADER = b"fecha,comprobante,cuenta,glosa,debe,haber\n"


def received(data: bytes, block: int = 7) -> ReceivedBytes:
    seen = ReceivedBytes()
    for start in range(0, len(data), block):
        seen.add(data[start : start + block])
    return seen


def test_a_stray_quote_passes(tmp_path: Path) -> None:
    data = HEADER + b'2026-10-01,V1,1101,Tubo 5" PVC,10,0\n'
    path = tmp_path / "l.csv"
    path.write_bytes(data)
    check_upload(path, "l.csv", received(data), 10**9)


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_a_quoted_field_never_closed_is_named_by_its_line(tmp_path: Path, ending: bytes) -> None:
    # Line 3 holds a quoted field over two lines (closed); line 5 opens one never closed.
    rows = [
        b"2026-10-01,V1,1101,ok,10,0",
        b'2026-10-01,V1,1101,"two',
        b'lines",10,0',
        b'2026-10-01,V2,1101,"never closed,10,0',
        b"2026-10-01,V2,1101,x,0,10",
    ]
    data = HEADER.replace(b"\n", ending) + ending.join(rows) + ending
    path = tmp_path / "l.csv"
    path.write_bytes(data)
    with pytest.raises(MalformedLedger, match=r"^Line 5: a quoted field is never closed"):
        check_upload(path, "l.csv", received(data), 10**9)


def test_a_header_of_too_many_columns_is_refused_while_it_arrives() -> None:
    seen = ReceivedBytes()
    with pytest.raises(PayloadTooLarge, match="2000 columns, more than 1000"):
        seen.add(b",".join(b"c%d" % n for n in range(2000)) + b"\n" + b"1," * 1999 + b"1\n")


def test_a_record_without_end_is_refused_before_the_file_is_in() -> None:
    seen = ReceivedBytes()
    seen.add(HEADER + b'2026-10-01,V1,1101,"')
    with pytest.raises(PayloadTooLarge, match=r"^Line 2: a record goes on for more than"):
        for _ in range(40):  # 40 MiB, more than the 16 MiB bound: refused on the way
            seen.add(b"x\n" * (512 * 1024))


def test_a_header_without_end_is_refused() -> None:
    seen = ReceivedBytes()
    with pytest.raises(PayloadTooLarge, match="header is longer than"):
        for _ in range(3):
            seen.add(b"c," * (512 * 1024))


def test_a_long_quoted_field_is_refused_at_the_line_it_opens() -> None:
    """Issue #16: 32 MiB of newlines in a quoted field after the first rows (closed, but past
    the record bound) is refused while it arrives, naming the line of its opening quote."""
    seen = ReceivedBytes()
    seen.add(HEADER + b"2026-10-01,V1,1101,x,10,0\n" * 3 + b'2026-10-01,V1,1101,"')
    with pytest.raises(PayloadTooLarge) as refused:
        for _ in range(32):
            seen.add(b"\n" * 1024 * 1024)
    assert str(refused.value).startswith(
        "Line 5: a record goes on for more than 16777216 bytes, in a quoted field opened there"
    )
