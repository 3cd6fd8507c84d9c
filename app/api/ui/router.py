"""The web console (SPEC §11): one page and its static assets, served by the API itself.

The page is a shell for ES modules that call the public API with the key the user pasted;
this side knows nothing of keys or tenants. Every response carries a strict
Content-Security-Policy: this origin only, no inline script or style, no framing.

Assets are read once and addressed by a hash of their content (`/ui/assets/<hash>/…`), so a
browser may keep them for good and still fetches a new release at once. The rate limiter lets
them through uncounted; the page itself and every API call it makes are counted.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

from fastapi import APIRouter
from starlette.responses import Response

from app.api.problems import problem

HERE = Path(__file__).parent
ASSETS_DIR = HERE / "assets"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
IMMUTABLE = "public, max-age=31536000, immutable"
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
TEXT = "text/plain; charset=utf-8"  # the licence and README beside the vendored files


def load_assets(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` by its relative POSIX path: all that can be served."""
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def content_version(assets: dict[str, bytes]) -> str:
    """A short hash of every asset's path and content."""
    digest = hashlib.sha256()
    for name, body in sorted(assets.items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(body).digest())
    return digest.hexdigest()[:16]


ASSETS = load_assets(ASSETS_DIR)
VERSION = content_version(ASSETS)
ASSETS_URL = f"/ui/assets/{VERSION}"
PAGE = (HERE / "index.html").read_text(encoding="utf-8").replace("{assets}", ASSETS_URL).encode()

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.api_route("", methods=["GET", "HEAD"])
async def console_page() -> Response:
    # no-cache: the page names the current assets' hash, so it must be revalidated.
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    return Response(PAGE, media_type="text/html; charset=utf-8", headers=headers)


@router.api_route("/assets/{version}/{path:path}", methods=["GET", "HEAD"])
async def console_asset(version: str, path: str) -> Response:
    body = ASSETS.get(path) if version == VERSION else None
    if body is None:
        # An old hash after an upgrade too: the reloaded page names the new one.
        return problem(404, f"no console asset {path!r} in this release")
    media_type = MEDIA_TYPES.get(PurePosixPath(path).suffix, TEXT)
    headers = {**SECURITY_HEADERS, "Cache-Control": IMMUTABLE}
    return Response(body, media_type=media_type, headers=headers)
