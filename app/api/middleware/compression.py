"""gzip for JSON answers that are not compressed already (pure ASGI). Snapshots arrive with
their gzip representation made once when cached and pass through; other answers large enough
to gain are compressed here, per request (off the event loop when large).

Starlette's GZipMiddleware would add a second `Vary` to the snapshot answers, which carry
theirs on every representation (304s included), so this one leaves an existing Vary alone."""

from __future__ import annotations

import asyncio
import gzip

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.encoding import accepts_gzip
from app.domain.snapshot import OFF_LOOP_BYTES

MIN_BYTES = 1024  # smaller answers gain too little to be worth compressing
# Per request, speed matters more than the last bytes: level 1 takes about half the CPU of 6
# and still shrinks a page of movements about 10 times. (Snapshots, compressed once, use 6.)
GZIP_LEVEL = 1


class CompressionMiddleware:
    """Compress single-message answers of at least MIN_BYTES that have no Content-Encoding,
    for clients that accept gzip; streamed answers pass as they are."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not accepts_gzip(Headers(scope=scope).get("accept-encoding")):
            await self.app(scope, receive, send)
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
            headers = MutableHeaders(raw=begun["headers"])
            if (
                message["type"] != "http.response.body"
                or message.get("more_body", False)
                or "content-encoding" in headers
                or len(body) < MIN_BYTES
            ):
                await send(begun)
                await send(message)
                return
            packed = await _compress(body)
            headers["content-encoding"] = "gzip"
            headers["content-length"] = str(len(packed))
            if "vary" not in headers:
                headers["vary"] = "Accept-Encoding"
            await send(begun)
            await send({**message, "body": packed})

        await self.app(scope, receive, compressing)


async def _compress(body: bytes) -> bytes:
    if len(body) < OFF_LOOP_BYTES:
        return gzip.compress(body, GZIP_LEVEL, mtime=0)
    return await asyncio.to_thread(gzip.compress, body, GZIP_LEVEL, mtime=0)
