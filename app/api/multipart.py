"""Receiving a multipart ledger upload: size-limited, streamed into an UploadSpool as it arrives.

The body is parsed with python-multipart's streaming parser rather than Starlette's form
(which spools the file part to a temporary file through a thread hop per chunk, after which it
would have to be read again): the `file` part goes straight to the spool, which hashes,
guards, keeps a local copy and compresses it for storage in the same pass, and on to a
StagedFile, which writes it to Postgres while the rest arrives. A failed upload removes it.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

import orjson
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException
from starlette.requests import Request

from app.domain.errors import DomainError, InvalidInput, InvalidLedgerOptions, PayloadTooLarge
from app.domain.ledger.format import LedgerOptions
from app.services.uploads.accept import ReceivedLedger
from app.services.uploads.guards import check_upload
from app.services.uploads.spool import UploadSpool
from app.services.uploads.store import StagedFile

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FORM_FIELDS = ("file", "decimal_separator", "column_map")
MAX_FIELDS = 10
MAX_FIELD_BYTES = 1024 * 1024

# Told of a file being stored while more of it arrives: its ledger id, file name and options.
Announce = Callable[[uuid.UUID, str | None, LedgerOptions], Awaitable[None]]


def parse_options(decimal_separator: str | None, column_map: str | None) -> LedgerOptions:
    """The upload's form options, validated."""
    mapping: object = {}
    if column_map and column_map.strip():
        try:
            mapping = orjson.loads(column_map)
        except orjson.JSONDecodeError as exc:
            raise InvalidLedgerOptions(f"column_map is not valid JSON: {exc}") from None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise InvalidLedgerOptions(
            'column_map must be a JSON object {"field": "Header in the file"}'
        )
    # No separator (or an empty field): detected from the file's amounts (SPEC §3).
    return LedgerOptions(decimal_separator=decimal_separator or None, column_map=mapping)


@asynccontextmanager
async def receive_ledger(
    request: Request, max_bytes: int, stage: StagedFile, announce: Announce | None = None
) -> AsyncIterator[ReceivedLedger]:
    """Receive the multipart body into a temporary folder that lives for the `async with`, and
    its file into `stage`, which is discarded if anything fails before the body of the `async
    with` ends (accepting the upload keeps it). `announce` learns of a file that is being
    stored while more of it arrives, with the options sent before it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        raise InvalidInput("Send the ledger as multipart/form-data with a `file` part")
    if not params.get(b"boundary"):
        raise HTTPException(400, "The multipart body has no boundary in its Content-Type")
    with tempfile.TemporaryDirectory(prefix="ledger-upload-") as tmp:
        form = _Form(Path(tmp), stage.add)
        if announce is not None:
            stage.on_streaming = partial(_announce, announce, stage.ledger_id, form)
        try:
            parser = MultipartParser(params[b"boundary"], form.callbacks())
            await _receive(request, parser, form, max_bytes)
            spool = form.checked_file()
            await spool.finish()
            await stage.finish()
        except BaseException:
            await form.discard()  # its last block may still be written, into `tmp`
            await stage.discard()
            raise
        try:
            fields = form.fields
            options = parse_options(fields.get("decimal_separator"), fields.get("column_map"))
            await asyncio.to_thread(check_upload, spool.path, form.filename, spool.seen, max_bytes)
            yield ReceivedLedger(stage.ledger_id, spool, form.filename, options)
        except BaseException:
            await stage.discard()
            raise
        finally:
            spool.close()


async def _receive(request: Request, parser: MultipartParser, form: _Form, max_bytes: int) -> None:
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes:
                raise _too_large(max_bytes)
            parser.write(chunk)  # the callbacks collect the file part's data...
            await form.flush()  # ...which goes to the spool here, where it may await
        parser.finalize()
    except FormParserError:
        raise HTTPException(400, "The multipart body is malformed") from None
    if not form.ended:
        raise HTTPException(400, "The multipart body ends before its closing boundary")


async def _announce(announce: Announce, ledger_id: uuid.UUID, form: _Form) -> None:
    """Announce the file with the options received so far: the usual order, options then file,
    gives the final ones; if more come after the file, the parse ahead sees the accepted layout
    differ and leaves the file to its run."""
    fields = form.fields
    try:
        options = parse_options(fields.get("decimal_separator"), fields.get("column_map"))
    except DomainError:
        return  # refused at the end of the body
    await announce(ledger_id, form.filename, options)


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The upload is larger than MAX_UPLOAD_BYTES ({max_bytes})")


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header_name: bytes = b""
    header_value: bytes = b""
    name: str = ""
    data: bytearray | None = None  # a text field's value; None for the file part


class _Form:
    """python-multipart callbacks: the `file` part goes to a spool, other parts are text."""

    def __init__(self, folder: Path, store: Callable[[bytes], Awaitable[None]]) -> None:
        self.folder = folder
        self.store = store
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.spool: UploadSpool | None = None
        self.ended = False
        self._part = _Part()
        self._file_data: list[bytes] = []
        self._field_count = 0

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._end,
            "on_end": self._finished,
        }

    async def flush(self) -> None:
        """Hand the file data collected by the last parser.write() to the spool."""
        if self.spool is not None:
            for data in self._file_data:
                await self.spool.write(data)
        self._file_data.clear()

    async def discard(self) -> None:
        """Abandon the spool, if any, once its block in flight is done."""
        if self.spool is not None:
            await self.spool.discard()

    def checked_file(self) -> UploadSpool:
        """The received file part; unknown form fields are refused."""
        unknown = sorted(set(self.fields) - set(FORM_FIELDS))
        if unknown:  # like unknown JSON members: a typo must not be silently ignored
            raise InvalidInput(
                f"Unknown form fields {unknown}; the fields are {', '.join(FORM_FIELDS)}"
            )
        if self.spool is None:
            raise InvalidInput("The multipart body has no `file` part")
        return self.spool

    def _begin(self) -> None:
        self._part = _Part()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._part.header_name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        # Bounded by the parser: at most 8 headers of 4 KiB each per part (python-multipart).
        self._part.header_value += data[start:end]

    def _header_end(self) -> None:
        self._part.headers[self._part.header_name.lower()] = self._part.header_value
        self._part.header_name = self._part.header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._part.headers.get(b"content-disposition", b""))
        if b"name" not in options:
            raise HTTPException(400, 'A multipart part has no Content-Disposition "name"')
        self._part.name = _decode(options[b"name"])
        if b"filename" not in options:
            self._field_count += 1
            if self._field_count > MAX_FIELDS:
                raise HTTPException(400, f"Too many form fields (at most {MAX_FIELDS})")
            self._part.data = bytearray()
            return
        if self._part.name in FORM_FIELDS[1:]:
            raise InvalidInput(
                "decimal_separator and column_map must be plain form fields, not files"
            )
        if self._part.name != "file":
            raise InvalidInput(
                f"Unknown file part {self._part.name!r}: the ledger goes in a part named `file`"
            )
        if self.spool is not None:
            raise HTTPException(400, "The multipart body has more than one `file` part")
        filename = _decode(options[b"filename"])
        if "\x00" in filename:  # it is stored, and Postgres text has no NUL
            raise InvalidInput("The file name of the `file` part has a NUL character")
        self.filename = filename
        self.spool = UploadSpool(self.folder, PurePath(filename).suffix[:10], self.store)

    def _data(self, data: bytes, start: int, end: int) -> None:
        value = self._part.data
        if value is None:
            self._file_data.append(data[start:end])
            return
        if len(value) + end - start > MAX_FIELD_BYTES:
            raise PayloadTooLarge(f"The form field {self._part.name!r} is over 1 MiB")
        value += data[start:end]

    def _end(self) -> None:
        if self._part.data is not None:
            if self._part.name == "file":
                raise InvalidInput("The `file` part must be a file (a part with a filename)")
            self.fields[self._part.name] = _decode(bytes(self._part.data))

    def _finished(self) -> None:
        self.ended = True


def _decode(value: bytes) -> str:
    """Form text as browsers send it (UTF-8), else Latin-1, which decodes any byte."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")
