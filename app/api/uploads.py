"""Receiving a multipart ledger upload: size-limited, spooled to disk, hashed on the way."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path, PurePath

import orjson
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Message, Receive

from app.domain.errors import InvalidInput, InvalidLedgerOptions, PayloadTooLarge
from app.domain.ledger_format import LedgerOptions
from app.services.ledgers import ReceivedLedger
from app.services.upload_guards import ReceivedBytes, check_upload

COPY_CHUNK_BYTES = 1024 * 1024
FORM_FIELDS = ("file", "decimal_separator", "column_map")


def _limited(receive: Receive, max_bytes: int) -> Receive:
    """Wrap `receive` so that a body over max_bytes stops with 413 as soon as it is seen."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > max_bytes:
                raise PayloadTooLarge(f"The upload is larger than MAX_UPLOAD_BYTES ({max_bytes})")
        return message

    return wrapped


def _too_large(request: Request, max_bytes: int) -> bool:
    declared = request.headers.get("content-length", "")
    return declared.isdigit() and int(declared) > max_bytes


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
    return LedgerOptions(decimal_separator=decimal_separator or ".", column_map=mapping)


@asynccontextmanager
async def receive_ledger(request: Request, max_bytes: int) -> AsyncIterator[ReceivedLedger]:
    """Parse the multipart body into a temporary file that lives for the `async with` block."""
    if _too_large(request, max_bytes):
        raise PayloadTooLarge(f"The upload is larger than MAX_UPLOAD_BYTES ({max_bytes})")
    limited = Request(request.scope, receive=_limited(request.receive, max_bytes))
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidInput("Send the ledger as multipart/form-data with a `file` part")
    async with limited.form(max_files=1, max_fields=10) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("The multipart body has no `file` part")
        if "\x00" in (upload.filename or ""):  # it is stored, and Postgres text has no NUL
            raise InvalidInput("The file name of the `file` part has a NUL character")
        unknown = sorted(set(form.keys()) - set(FORM_FIELDS))
        if unknown:  # like unknown JSON members: a typo must not be silently ignored
            raise InvalidInput(
                f"Unknown form fields {unknown}; the fields are {', '.join(FORM_FIELDS)}"
            )
        options = parse_options(_text(form.get("decimal_separator")), _text(form.get("column_map")))
        suffix = PurePath(upload.filename or "").suffix[:10]
        with tempfile.TemporaryDirectory(prefix="ledger-upload-") as tmp:
            path = Path(tmp) / f"ledger{suffix}"
            digest = hashlib.sha256()
            seen = ReceivedBytes()
            with path.open("wb") as out:
                while chunk := await upload.read(COPY_CHUNK_BYTES):
                    digest.update(chunk)
                    seen.add(chunk)
                    out.write(chunk)
            await asyncio.to_thread(check_upload, path, upload.filename, seen, max_bytes)
            yield ReceivedLedger(path, upload.filename, seen.size, digest.hexdigest(), options)


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidInput("decimal_separator and column_map must be plain form fields, not files")
