"""The web console in a real headless Chromium, against a real server and worker: every figure
it shows is the API's own, nothing leaves the host, and the page reports no error.

The data is made through the API with an analyst key and processed by the worker; the console
signs in with a viewer key of the same tenant, typed into its form. Screenshots of each page
are saved in the test's temporary directory."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.conftest import KeyMaker
from tests.e2e.browser import DevTools, off_host
from tests.e2e.conftest import DESKTOP, PHONE, running_server
from tests.e2e.console_support import (
    History,
    Worker,
    api_get,
    assert_diff,
    assert_incidences,
    assert_iterations,
    assert_operations,
    assert_parse_record,
    assert_stayed_home,
    click,
    figure,
    go,
    mark_view,
    press,
    rows,
    seed_history,
    sign_in,
    texts,
    wait_view,
)

pytestmark = pytest.mark.browser

KEY_ITEM = "ledger-incidences.api-key"


@dataclass
class Console:
    base: str
    tenant: str
    viewer: str  # the console signs in with it
    analyst: str  # it made the data: the iterations' requested_by is its name
    history: History


@pytest.fixture(scope="module")
async def console(console_server: str, make_key: KeyMaker, run_worker: Worker) -> Console:
    tenant = f"console-{secrets.token_hex(4)}"
    analyst = await make_key("analyst", tenant=tenant, name="e2e-analyst")
    viewer = await make_key("viewer", tenant=tenant, name="e2e-viewer")
    history = await seed_history(console_server, analyst, run_worker)
    return Console(console_server, tenant, viewer, analyst, history)


def test_closing_page_shows_the_apis_snapshot(
    console: Console, browser: DevTools, tmp_path: Path
) -> None:
    base, key, closing_id = console.base, console.viewer, console.history.closing_id
    sign_in(browser, base, key)
    wait_view(browser, "section.client")
    # The key is in this tab's session storage, and nowhere else the page could keep it.
    assert browser.evaluate(f"sessionStorage.getItem('{KEY_ITEM}')") == key
    assert browser.evaluate("localStorage.length") == 0
    assert browser.evaluate("document.cookie") == ""

    clients = api_get(base, key, "/clients")["items"]
    assert texts(browser, "section.client h2") == [client["name"] for client in clients]
    closings = api_get(base, key, f"/clients/{console.history.client_id}/closings")["items"]
    assert rows(browser, f"#closings-{console.history.client_id}") == [
        [
            c["period"],
            c["status"],
            f"#{c['latest_iteration']['number']} {c['latest_iteration']['status']}",
            f"iteration {c['snapshot']['iteration']}",
        ]
        for c in closings
    ]
    click(browser, f"a[href='#/closings/{closing_id}']", "#incidences")
    # Keyboard and screen-reader users start on the new page's heading.
    assert browser.evaluate("document.activeElement === document.querySelector('#view h1')")
    browser.screenshot(tmp_path / "closing-1280.png")

    snapshot = api_get(base, key, f"/closings/{closing_id}/incidences", limit=50)
    statistics = snapshot["statistics"]
    tiles = browser.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#key-figures [data-stat]')]"
        ".map((tile) => [tile.dataset.stat, tile.querySelector('dd').innerText]))"
    )
    assert set(tiles) == {
        "movements_total", "movements_rejected", "movements_with_incidences",
        "incidences_total", "debit_total", "credit_total",
    }  # fmt: skip
    assert {name: figure(text) for name, text in tiles.items()} == {
        name: str(statistics[name]) for name in tiles
    }
    for table, tallies in (("#by-severity", "by_severity"), ("#by-type", "by_type")):
        shown = [[row[0], figure(row[1]), figure(row[2])] for row in rows(browser, table)]
        assert shown == [
            [name, str(tally["incidences"]), str(tally["movements"])]
            for name, tally in statistics[tallies].items()
        ], table
    assert_incidences(browser, snapshot)

    # Filtered by the most frequent type and by severity, from the form, with the keyboard.
    kind = max(statistics["by_type"], key=lambda name: statistics["by_type"][name]["incidences"])
    browser.evaluate(f"document.getElementById('filter-type').value = '{kind}'")
    browser.evaluate("document.getElementById('filter-severity').value = 'error'")
    browser.evaluate("document.getElementById('filter-apply').focus()")
    mark_view(browser)
    press(browser, "Enter")
    wait_view(browser, "#incidences")
    filtered = api_get(
        base, key, f"/closings/{closing_id}/incidences", type=kind, severity="error", limit=50
    )
    assert filtered["incidences"], "the filter should keep some incidences"
    assert_incidences(browser, filtered)

    # Pages of three: the first, then the next one through the pager's link.
    go(browser, f"#/closings/{closing_id}?limit=3", "#incidences")
    assert_incidences(browser, api_get(base, key, f"/closings/{closing_id}/incidences", limit=3))
    click(browser, "#page-next", "#incidences")
    second = api_get(base, key, f"/closings/{closing_id}/incidences", limit=3, offset=3)
    assert_incidences(browser, second)

    assert_movements(browser, console, snapshot, tmp_path)
    assert_stayed_home(browser, console.base, console.viewer)


def assert_movements(
    devtools: DevTools, console: Console, snapshot: dict[str, Any], tmp_path: Path
) -> None:
    """Drill-down: the incidence with the most movements, a movement per cursor page."""
    base, key, closing_id = console.base, console.viewer, console.history.closing_id
    target = max(snapshot["incidences"], key=lambda incidence: incidence["movement_count"])
    assert target["movement_count"] >= 3, "the drill-down should need several pages"
    go(devtools, f"#/closings/{closing_id}", "#incidences")
    link = devtools.evaluate(
        f"[...document.querySelectorAll('#incidences a')]"
        f".find((a) => a.textContent === '{target['key']}').getAttribute('href')"
    )
    go(devtools, f"{link}?limit=1", "#movements")
    for loaded in range(2, target["movement_count"] + 1):
        devtools.evaluate("document.getElementById('load-more').click()")
        devtools.wait_for(f"document.querySelectorAll('#movements tbody tr').length === {loaded}")
    devtools.wait_for("document.getElementById('load-more').hidden")
    movements = api_get(
        base, key, f"/closings/{closing_id}/incidences/{target['key']}/movements", limit=1000
    )["items"]
    shown = [
        [figure(r[0]), r[1], r[2], r[3], figure(r[6]), figure(r[7])]
        for r in rows(devtools, "#movements")
    ]
    assert shown == [
        [str(m["line"]), m["date"], f"{m['account_code']} {m['account_name'] or ''}".strip(),
         m["voucher"], m["debit"], m["credit"]]
        for m in movements
    ]  # fmt: skip
    # On a phone the page does not scroll sideways: wide tables become cards.
    devtools.call("Emulation.setDeviceMetricsOverride", **PHONE)
    assert devtools.wait_for("document.documentElement.scrollWidth <= window.innerWidth")
    devtools.screenshot(tmp_path / "movements-phone.png")
    go(devtools, f"#/closings/{closing_id}", "#incidences")
    assert devtools.wait_for("document.documentElement.scrollWidth <= window.innerWidth")
    devtools.screenshot(tmp_path / "closing-phone.png")
    devtools.call("Emulation.setDeviceMetricsOverride", **DESKTOP)


def test_history_chart_diff_and_operations(
    console: Console, browser: DevTools, tmp_path: Path
) -> None:
    base, key, closing_id = console.base, console.viewer, console.history.closing_id
    sign_in(browser, base, key)
    wait_view(browser, "section.client")
    go(browser, f"#/closings/{closing_id}/history", "#history-chart")
    browser.screenshot(tmp_path / "history-1280.png")

    # Every figure is in the listed iterations: their diff and summary, nothing per iteration.
    listed = api_get(base, key, f"/closings/{closing_id}/iterations", limit=100)["items"]
    assert not [url for url in browser.requests if "/iterations/" in url]
    assert_iterations(browser, listed)
    assert texts(browser, "#history-bound") == [
        "All 3 iterations of this closing. Read from the API 20 at a time."
    ]

    # The chart: one series per type that had an incidence, valued as each iteration's
    # summary.by_type, which is what its snapshot said.
    chart = browser.evaluate(
        "(() => { const plot = document.getElementById('history-chart').plot;"
        " return {labels: plot.series.slice(1).map((s) => s.label),"
        " data: plot.data.map((values) => Array.from(values))}; })()"
    )
    by_type = {
        item["number"]: {
            kind: tally["incidences"] for kind, tally in item["summary"]["by_type"].items()
        }
        for item in listed
    }
    assert by_type == console.history.by_type
    numbers = sorted(by_type)
    types = sorted({kind for counts in by_type.values() for kind, n in counts.items() if n})
    assert chart["labels"] == types
    assert chart["data"][0] == numbers
    for label, values in zip(chart["labels"], chart["data"][1:], strict=True):
        assert values == [by_type[number].get(label, 0) for number in numbers], label

    # Pages of two: the page follows next_cursor and shows them all; bounded to the newest
    # two, it says older ones are left out.
    for route, bound, shown, pages in (
        ("limit=2", "All 3 iterations of this closing. Read from the API 2 at a time.", 3,
         ["limit=2", "limit=2&cursor=2"]),
        ("limit=1&newest=2", "The newest 2 iterations; older ones are left out (this page "
         "shows at most the newest 2). Read from the API 1 at a time.", 2,
         ["limit=1", "limit=1&cursor=3"]),
    ):  # fmt: skip
        sent = len(browser.requests)
        go(browser, f"#/closings/{closing_id}/history?{route}", "#history-chart")
        assert texts(browser, "#history-bound") == [bound]
        assert_iterations(browser, listed[:shown])
        assert browser.evaluate("document.getElementById('history-chart').plot.data[0]") == [
            item["number"] for item in reversed(listed[:shown])
        ]
        assert [
            url.split("?")[1] for url in browser.requests[sent:] if "/iterations?" in url
        ] == pages

    assert_parse_record(browser, listed[0])

    # The diff page opens on the last two iterations; the form compares any two.
    go(browser, f"#/closings/{closing_id}/diff", "#diff-summary")
    assert texts(browser, "#diff-summary")[0].startswith(f"From iteration {numbers[-2]} to 3:")
    assert_diff(browser, api_get(base, key, f"/closings/{closing_id}/diff", **{"from": 2, "to": 3}))
    browser.evaluate("document.getElementById('diff-from').value = '1'")
    browser.evaluate("document.getElementById('diff-apply').focus()")
    mark_view(browser)
    press(browser, "Enter")
    wait_view(browser, "#diff-summary")
    diff = api_get(base, key, f"/closings/{closing_id}/diff", **{"from": 1, "to": 3})
    assert diff["new"] and diff["resolved"], "the scenario should have new and resolved keys"
    assert_diff(browser, diff)
    browser.screenshot(tmp_path / "diff-1280.png")

    go(browser, "#/operations", "#checks")
    health = assert_operations(browser)
    assert list(health["checks"]) == list(httpx.get(f"{base}/health", timeout=10).json()["checks"])
    browser.screenshot(tmp_path / "operations-1280.png")
    assert_stayed_home(browser, console.base, console.viewer)


def test_a_refused_key_is_asked_for_again(console: Console, browser: DevTools) -> None:
    base, closing_id = console.base, console.history.closing_id
    sign_in(browser, base, "li_" + "x" * 43)
    browser.wait_for("document.getElementById('key-message').innerText.includes('(401)')")
    assert browser.evaluate(f"sessionStorage.getItem('{KEY_ITEM}')") is None
    # A key refused later on (revoked meanwhile, say): the next page asks for a key again.
    sign_in(browser, base, console.viewer)
    wait_view(browser, "section.client")
    browser.evaluate(f"sessionStorage.setItem('{KEY_ITEM}', 'li_revoked-meanwhile')")
    go(browser, f"#/closings/{closing_id}", "#api-key")
    assert "(401)" in texts(browser, "#key-message")[0]
    assert browser.evaluate(f"sessionStorage.getItem('{KEY_ITEM}')") is None
    go(browser, "#/operations", "#checks")  # /health needs no key
    refused = [status for _, status, _ in browser.responses if status >= 400]
    assert refused == [401, 401]
    # The browser reports each refused request; nothing else went wrong.
    assert len(browser.errors) == 2 and all("status of 401" in e for e in browser.errors)
    assert off_host(browser.requests, base) == []


@pytest.fixture(scope="module")
def limited_server(
    console: Console, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The same data behind a server that allows four reads a minute per key."""
    workdir = tmp_path_factory.mktemp("limited-server")
    with running_server(settings, workdir, RATE_LIMIT_READ="4/60") as (base, _):
        yield base


async def test_a_rate_limited_page_says_when_to_retry(
    console: Console, limited_server: str, make_key: KeyMaker, browser: DevTools
) -> None:
    # A key of its own: the window counts every read of a key, on any server.
    key = await make_key("viewer", tenant=console.tenant, name="e2e-limited")
    sign_in(browser, limited_server, key)
    # The key's check, the client list and each client's closings: the four reads allowed.
    wait_view(browser, "section.client")
    go(browser, f"#/closings/{console.history.closing_id}", "#error-message")
    limited = [headers for _, status, headers in browser.responses if status == 429]
    assert len(limited) == 1
    assert texts(browser, "#error-message") == [
        "Too many requests (429): the rate limit is reached. "
        f"Retry in {limited[0]['retry-after']} s."
    ]
    assert browser.evaluate("document.getElementById('retry').disabled")
    assert len(browser.errors) == 1 and "status of 429" in browser.errors[0]
