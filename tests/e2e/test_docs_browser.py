"""The API docs work offline: a real headless Chromium renders /docs from a real
uvicorn, with every outside host made unresolvable, and the page requests nothing off-host.

The browser is driven over the DevTools protocol, so the test sees every request the *page*
makes (the browser's own background traffic is not the page's and is blocked anyway)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.e2e.browser import chromium_path, headless_chromium, off_host, render
from tests.e2e.conftest import running_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def docs_server(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    chromium_path()  # skip or fail before starting anything
    with running_server(settings, tmp_path_factory.mktemp("docs-server")) as (base, _):
        yield base


def test_docs_html_references_only_its_own_assets(docs_server: str) -> None:
    html = httpx.get(f"{docs_server}/docs", timeout=5).text
    assert "/docs-assets/swagger-ui-bundle.js" in html
    assert "/docs-assets/swagger-ui.css" in html
    assert "https://" not in html and "http://" not in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        response = httpx.get(f"{docs_server}/docs-assets/{asset}", timeout=10)
        assert response.status_code == 200 and len(response.content) > 10_000


def test_swagger_ui_renders_offline(docs_server: str, tmp_path: Path) -> None:
    with headless_chromium(tmp_path) as devtools:
        text = render(
            devtools,
            f"{docs_server}/docs",
            ["Ledger Incidences", "/api/v1/clients", "List clients", "Create a client", "/ready"],
        )
        requests = list(devtools.requests)
    assert "Swagger" not in text or "Failed to load" not in text
    assert f"{docs_server}/openapi.json" in requests
    assert f"{docs_server}/docs-assets/swagger-ui-bundle.js" in requests
    assert off_host(requests, docs_server) == [], "the docs page requested outside hosts"
