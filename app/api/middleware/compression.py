"""gzip for answers that are not compressed already (pure ASGI), as SPEC §6 has it for every
JSON answer: snapshots arrive with their gzip representation made once when cached and pass
through; the others are compressed here, per request (off the event loop when large). Every
answer says `Vary: Accept-Encoding`, whichever representation it is.

Starlette's GZipMiddleware would add a second `Vary` to the snapshot answers, which carry
theirs on every representation (304s included), so this one leaves an existing Vary alone."""

from __future__ import annotations

import asyncio
import gzip
import zlib

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.encoding import accepts_gzip
from app.domain.snapshot import OFF_LOOP_BYTES

# Per request, speed matters more than the last bytes: level 1 takes about half the CPU of 6
# and still shrinks a page of movements about 10 times. (Snapshots, compressed once, use 6.)
GZIP_LEVEL = 1
# Below this, a 512-byte window and the smallest state: setting up gzip's usual 256 KiB of it
# costs 60 us, five times the whole compression of such an answer, for 5 % smaller output.
SMALL_BYTES = 1024
_SMALL_WINDOW_GZIP = 16 + 9  # wbits: a gzip wrapper, a 2**9-byte window
_SMALL_MEMORY = 1


class CompressionMiddleware:
    """Compress single-message answers with content and no Content-Encoding, for clients that
    accept gzip; streamed answers pass as they are."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not accepts_gzip(Headers(scope=scope).get("accept-encoding")):
            await self.app(scope, receive, _varying(send))
            return
        start: Message | None = None

        async def compressing(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if start is None:  # already sent: later messages of a streamed answer
                await send(message)
                return
            begun, start = start, None
            body = message.get("body", b"")
            headers = _with_vary(begun)
            if (
                message["type"] != "http.response.body"
                or message.get("more_body", False)
                or "content-encoding" in headers
                or not body  # a 304, a 204: nothing to compress
            ):
                await send(begun)
                await send(message)
                return
            packed = await _compress(body)
            headers["content-encoding"] = "gzip"
            headers["content-length"] = str(len(packed))
            await send(begun)
            await send({**message, "body": packed})

        await self.app(scope, receive, compressing)


def _varying(send: Send) -> Send:
    """`send`, adding `Vary: Accept-Encoding` to an answer that has none: its identity
    representation is not the one a client that accepts gzip gets."""

    async def varying(message: Message) -> None:
        if message["type"] == "http.response.start":
            _with_vary(message)
        await send(message)

    return varying


def _with_vary(start: Message) -> MutableHeaders:
    """The headers of an answer's start message, given `Vary: Accept-Encoding` unless they
    have a Vary (the snapshot answers carry theirs)."""
    headers = MutableHeaders(raw=start["headers"])
    if "vary" not in headers:
        headers["vary"] = "Accept-Encoding"
    return headers


async def _compress(body: bytes) -> bytes:
    if len(body) < SMALL_BYTES:
        packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, _SMALL_WINDOW_GZIP, _SMALL_MEMORY)
        return packer.compress(body) + packer.flush()
    if len(body) < OFF_LOOP_BYTES:
        return gzip.compress(body, GZIP_LEVEL, mtime=0)
    return await asyncio.to_thread(gzip.compress, body, GZIP_LEVEL, mtime=0)
