"""The web console's page and assets as served (SPEC §11): only this origin's files, a strict
Content-Security-Policy, content-addressed assets whose module imports all resolve, and no
third-party file without its licence. The page itself is exercised in a real browser by
tests/e2e/test_console_browser.py."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from httpx import AsyncClient

from app.api.ui import router as console

# Every resource the page loads (src/href), and every static ES module import.
PAGE_REFERENCES = re.compile(r'(?:src|href)="(/[^"]+)"')
MODULE_IMPORTS = re.compile(r'^import .* from "(\.{1,2}/[^"]+)";$', re.MULTILINE)


def csp_directives(response_header: str) -> dict[str, str]:
    pairs = (part.strip().split(" ", 1) for part in response_header.split(";"))
    return {name: value for name, value in pairs}


async def test_page_names_only_its_own_assets_under_a_strict_policy(client: AsyncClient) -> None:
    response = await client.get("/ui")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    policy = csp_directives(response.headers["content-security-policy"])
    assert policy["default-src"] == policy["script-src"] == policy["connect-src"] == "'self'"
    assert policy["style-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in response.text and " style=" not in response.text  # nothing inline
    references = PAGE_REFERENCES.findall(response.text)
    assert references and all(ref.startswith(console.ASSETS_URL + "/") for ref in references)
    assert "http://" not in response.text and "https://" not in response.text


async def test_every_asset_and_module_import_resolves(client: AsyncClient) -> None:
    page = (await client.get("/ui")).text
    pending = [ref.removeprefix(console.ASSETS_URL + "/") for ref in PAGE_REFERENCES.findall(page)]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        response = await client.get(f"{console.ASSETS_URL}/{name}")
        assert response.status_code == 200, name
        assert response.headers["cache-control"] == console.IMMUTABLE
        assert "content-security-policy" in response.headers
        if name.endswith(".js"):
            assert response.headers["content-type"].startswith("text/javascript"), name
            folder = PurePosixPath(name).parent
            for target in MODULE_IMPORTS.findall(response.text):
                pending.append(_resolve(folder, target))
    # Every script the console has is reached from the page: none is dead or misnamed.
    shipped = {name for name in console.ASSETS if name.endswith((".js", ".css"))}
    assert shipped <= seen


def _resolve(folder: PurePosixPath, target: str) -> str:
    parts = list(folder.parts)
    for part in PurePosixPath(target).parts:
        if part == "..":
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


async def test_unknown_and_outdated_assets_are_404(client: AsyncClient) -> None:
    some_asset = next(iter(console.ASSETS))
    for path in (
        f"/ui/assets/0000000000000000/{some_asset}",  # a previous release's hash
        f"{console.ASSETS_URL}/no-such-file.js",
        f"{console.ASSETS_URL}/../router.py",
        f"{console.ASSETS_URL}/%2e%2e/router.py",
    ):
        # httpx removes the dot segments; Starlette then adds a slash (307) to find a route.
        response = await client.get(path, follow_redirects=True)
        assert response.status_code == 404, path


async def test_assets_are_not_rate_limited_but_the_page_is(client: AsyncClient) -> None:
    asset = f"{console.ASSETS_URL}/js/main.js"
    answers = [await client.get(asset) for _ in range(3)]
    assert all(r.status_code == 200 for r in answers)
    assert all("x-ratelimit-limit" not in r.headers for r in answers)
    assert "x-ratelimit-limit" in (await client.get("/ui")).headers


async def test_console_is_not_in_the_openapi_document(client: AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith("/ui")]


def test_vendored_files_carry_their_licence_and_origin() -> None:
    vendored = {PurePosixPath(name).parent for name in console.ASSETS if name.startswith("vendor/")}
    assert vendored, "the chart library ships with the console"
    readme = console.ASSETS["README.md"].decode()
    for folder in vendored:
        assert f"{folder}/LICENSE" in console.ASSETS, folder
        assert f"`{folder}/" in readme, f"{folder} is not described in the assets README"
