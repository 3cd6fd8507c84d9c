"""The console's actions in a real headless Chromium (SPEC §10, §11): an analyst acknowledges an
incidence with a typed note and opens it again, from the keyboard; closing the month is refused
while errors are unreviewed, and the page lists the API's own `unreviewed_keys`, each of which
can be acknowledged from there until the close succeeds; an admin forces a close after a
confirmation; a viewer is told it may not do either. Every state the page shows after an
action is the API's own, read back through the API by the test."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import KeyMaker, bearer
from tests.e2e.browser import DevTools
from tests.e2e.console_support import (
    CHART,
    LEDGER_1,
    Worker,
    api_get,
    assert_stayed_home,
    click,
    focused,
    go,
    mark_view,
    press,
    rows,
    sign_in,
    texts,
    wait_view,
)
from tests.helpers import API, create_closing, upload

pytestmark = pytest.mark.browser

URI_SAFE = "-_.!~*'()"  # what encodeURIComponent leaves as it is


@dataclass
class Actions:
    base: str
    viewer: str
    analyst: str
    admin: str
    reviewed: str  # a closing for reviews (the viewer's tries too)
    blocked: str  # one to close once its errors are acknowledged
    forced: str  # one an admin closes anyway


@pytest.fixture(scope="module")
async def actions(console_server: str, make_key: KeyMaker, run_worker: Worker) -> Actions:
    tenant = f"actions-{secrets.token_hex(4)}"
    analyst = await make_key("analyst", tenant=tenant, name="e2e-analyst")
    closings = []
    async with httpx.AsyncClient(base_url=console_server, timeout=30) as http:
        for name in ("Andes Retail SpA", "Pacífico Foods SpA", "Austral Mining SpA"):
            doc_types = [{"code": "FAC", "name": "Factura"}]
            closing = await create_closing(
                http, analyst, chart=CHART, doc_types=doc_types, name=name
            )
            response = await upload(http, analyst, closing.id, LEDGER_1.encode())
            assert response.status_code == 202, response.text
            closings.append(closing.id)
        await run_worker()
    return Actions(
        console_server,
        viewer=await make_key("viewer", tenant=tenant, name="e2e-viewer"),
        analyst=analyst,
        admin=await make_key("admin", tenant=tenant, name="e2e-admin"),
        reviewed=closings[0],
        blocked=closings[1],
        forced=closings[2],
    )


def row_of(scope: str, key: str) -> str:
    """A JS expression: the element of `scope` about incidence `key` (a table row, a list item)."""
    return (
        f"[...document.querySelectorAll({json.dumps(scope + ' tbody tr, ' + scope + ' li')})]"
        f".find((row) => (row.dataset.key ?? row.cells[0].innerText.trim()) === {json.dumps(key)})"
    )


def shown_review(devtools: DevTools, scope: str, key: str) -> dict[str, Any]:
    """The review the page shows for `key`: status, stale, note, by (name) and at."""
    review: dict[str, Any] = devtools.evaluate(
        f"(() => {{ const review = {row_of(scope, key)}.querySelector('.review');"
        " const by = review.querySelector('.review-by');"
        " return {status: review.dataset.reviewStatus, stale: review.dataset.stale === 'true',"
        " note: review.querySelector('.review-note')?.innerText ?? null,"
        " by: by ? by.innerText.split(',')[0].replace('by ', '') : null,"
        " at: by?.querySelector('time')?.getAttribute('datetime') ?? null}; })()"
    )
    return review


def review_from_keyboard(devtools: DevTools, scope: str, key: str, note: str) -> None:
    """Focus the review button of `key`, Enter, type the note, Tab to the submit button,
    Enter; wait for the page shown again with the new state."""
    button = f"{row_of(scope, key)}.querySelector('button[data-key]')"
    devtools.evaluate(f"{button}.focus()")
    before = devtools.evaluate(f"{button}.dataset.action")
    press(devtools, "Enter")
    devtools.wait_for(
        "document.getElementById('review-dialog')?.open"
        " && document.activeElement.id === 'review-note'"
    )
    assert texts(devtools, "#review-key") == [key]
    devtools.call("Input.insertText", text=note)
    press(devtools, "Tab")
    assert focused(devtools) == "review-dialog-submit"
    mark_view(devtools)
    press(devtools, "Enter")
    wait_view(devtools, scope)
    after = {"acknowledge": "reopen", "reopen": "acknowledge"}[before]
    assert devtools.evaluate(f"{button}.dataset.action") == after
    # The focus is back on the incidence's button, ready for the next action.
    assert devtools.evaluate(f"document.activeElement === {button}")


def incidence(base: str, key: str, closing_id: str, wanted: str) -> dict[str, Any]:
    snapshot = api_get(base, key, f"/closings/{closing_id}/incidences")
    return next(item for item in snapshot["incidences"] if item["key"] == wanted)


def test_an_analyst_acknowledges_and_reopens_from_the_keyboard(
    actions: Actions, browser: DevTools, tmp_path: Path
) -> None:
    base, key, closing_id = actions.base, actions.analyst, actions.reviewed
    sign_in(browser, base, key)
    wait_view(browser, "section.client")
    go(browser, f"#/closings/{closing_id}", "#incidences")
    snapshot = api_get(base, key, f"/closings/{closing_id}/incidences")
    target = next(item["key"] for item in snapshot["incidences"] if item["severity"] == "error")
    assert shown_review(browser, "#incidences", target) == {
        "status": "open", "stale": False, "note": None, "by": None, "at": None
    }  # fmt: skip

    note = "ERP rounding <b>fixed</b> next month"  # markup in a note shows as text
    review_from_keyboard(browser, "#incidences", target, note)
    review = incidence(base, key, closing_id, target)["review"]
    assert review == {
        "status": "acknowledged", "note": note, "by": "e2e-analyst", "at": review["at"],
        "stale": False,
    }  # fmt: skip
    assert shown_review(browser, "#incidences", target) == review
    statistics = api_get(base, key, f"/closings/{closing_id}/incidences")["statistics"]
    assert statistics["reviews"] == {
        "open": len(snapshot["incidences"]) - 1,
        "acknowledged": 1,
        "stale": 0,
    }
    tiles = browser.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#review-figures [data-review]')]"
        ".map((tile) => [tile.dataset.review, Number(tile.querySelector('dd').innerText)]))"
    )
    assert tiles == statistics["reviews"]
    browser.screenshot(tmp_path / "closing-reviewed-1280.png")

    # The review filter, from the form: only the acknowledged incidence.
    browser.evaluate("document.getElementById('filter-review').value = 'acknowledged'")
    browser.evaluate("document.getElementById('filter-apply').focus()")
    mark_view(browser)
    press(browser, "Enter")
    wait_view(browser, "#incidences")
    assert [row[0] for row in rows(browser, "#incidences")] == [target]
    filtered = api_get(base, key, f"/closings/{closing_id}/incidences", review="acknowledged")
    assert [item["key"] for item in filtered["incidences"]] == [target]

    # Opened again, with a note of why.
    go(browser, f"#/closings/{closing_id}", "#incidences")
    review_from_keyboard(browser, "#incidences", target, "The amounts need another look")
    review = incidence(base, key, closing_id, target)["review"]
    assert review["status"] == "open" and review["note"] == "The amounts need another look"
    assert shown_review(browser, "#incidences", target) == review
    assert_stayed_home(browser, base, key)


def test_close_is_blocked_until_the_errors_are_acknowledged(
    actions: Actions, browser: DevTools, tmp_path: Path
) -> None:
    base, key, closing_id = actions.base, actions.analyst, actions.blocked
    sign_in(browser, base, key)
    wait_view(browser, "section.client")
    go(browser, f"#/closings/{closing_id}", "#close-month")
    refused = httpx.patch(
        f"{base}{API}/closings/{closing_id}", json={"status": "closed"}, headers=bearer(key)
    )
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/close-blocked"
    keys = refused.json()["unreviewed_keys"]
    assert len(keys) >= 2

    click(browser, "#close-month", "#close-blocked")
    assert focused(browser) == "close-blocked-title"
    assert texts(browser, "#unreviewed-keys li code") == keys
    assert browser.evaluate(
        "[...document.querySelectorAll('#unreviewed-keys li a')].map((a) => a.getAttribute('href'))"
    ) == [f"#/closings/{closing_id}/incidences/{quote(k, safe=URI_SAFE)}" for k in keys]
    browser.screenshot(tmp_path / "close-blocked-1280.png")

    # An analyst may not close anyway: the confirmation says the API's 403, the page then
    # offers it no more.
    browser.evaluate("document.getElementById('force-close').click()")
    browser.wait_for("document.getElementById('force-dialog')?.open")
    assert focused(browser) == "force-dialog-submit"
    press(browser, "Enter")
    browser.wait_for("document.getElementById('force-dialog-message').innerText.includes('(403)')")
    assert browser.evaluate("document.getElementById('force-dialog-submit').disabled")
    mark_view(browser)
    press(browser, "Escape")
    wait_view(browser, "#force-denied")
    assert focused(browser) == "force-denied"
    assert browser.evaluate("!document.getElementById('force-close')")

    for unreviewed in keys:
        review_from_keyboard(browser, "#unreviewed-keys", unreviewed, "Checked with the client")
        assert incidence(base, key, closing_id, unreviewed)["review"]["status"] == "acknowledged"
        if unreviewed == keys[0]:
            browser.screenshot(tmp_path / "closing-reviews-1280.png")
    assert texts(browser, "#unreviewed-keys .badge") == ["acknowledged"] * len(keys)

    click(browser, "#close-month", "#reopen-month")
    assert api_get(base, key, f"/closings/{closing_id}")["status"] == "closed"
    assert "closed" in texts(browser, "#month-state")[0]
    assert browser.evaluate("!document.getElementById('close-blocked')")
    # A closed month takes no review: its buttons are disabled, and the page says why.
    assert browser.evaluate(
        "[...document.querySelectorAll('#incidences button[data-key]')].every((b) => b.disabled)"
    )
    assert texts(browser, "#review-closed")

    click(browser, "#reopen-month", "#close-month")
    assert api_get(base, key, f"/closings/{closing_id}")["status"] == "open"
    assert_stayed_home(browser, base, key, statuses=(403, 409))


def test_an_admin_forces_the_close_after_confirming(
    actions: Actions, browser: DevTools, tmp_path: Path
) -> None:
    base, key, closing_id = actions.base, actions.admin, actions.forced
    sign_in(browser, base, key)
    wait_view(browser, "section.client")
    go(browser, f"#/closings/{closing_id}", "#close-month")
    click(browser, "#close-month", "#close-blocked")
    keys = texts(browser, "#unreviewed-keys li code")
    browser.evaluate("document.getElementById('force-close').click()")
    browser.wait_for("document.getElementById('force-dialog')?.open")
    assert texts(browser, "#force-warning")[0].startswith(f"{len(keys)} error incidences")
    browser.screenshot(tmp_path / "force-dialog-1280.png")
    mark_view(browser)
    press(browser, "Enter")
    wait_view(browser, "#reopen-month")
    assert api_get(base, key, f"/closings/{closing_id}")["status"] == "closed"
    audit = api_get(base, key, "/audit", closing_id=closing_id, action="closing.force_closed")
    assert [event["details"]["unreviewed_keys"] for event in audit["items"]] == [keys]

    # The closing's audit trail, for an admin: the forced close on top, with its keys.
    go(browser, f"#/closings/{closing_id}/audit", "#audit-events")
    events = api_get(base, key, "/audit", closing_id=closing_id, limit=50)["items"]
    assert_events(browser, events)
    assert events[0]["action"] == "closing.force_closed"
    assert f"unreviewed_keys: {', '.join(keys)}" in rows(browser, "#audit-events")[0][4]
    assert_stayed_home(browser, base, key, statuses=(409,))


def assert_events(devtools: DevTools, events: list[dict[str, Any]]) -> None:
    """The page's audit table: the API's events, newest first."""
    shown = devtools.evaluate(
        "[...document.querySelectorAll('#audit-events tbody tr')].map((tr) =>"
        " [tr.querySelector('time').getAttribute('datetime'),"
        "  ...[...tr.cells].slice(1).map((cell) => cell.innerText.trim())])"
    )
    assert [row[:4] for row in shown] == [
        [
            event["at"],
            f"{event['actor']['name']} ({event['actor']['role']})",
            event["action"],
            f"{event['resource']['type']} {event['resource']['id']}",
        ]
        for event in events
    ]


def test_a_viewer_is_told_it_may_not_review_or_close(actions: Actions, browser: DevTools) -> None:
    base, key, closing_id = actions.base, actions.viewer, actions.reviewed
    before = api_get(base, key, f"/closings/{closing_id}/incidences")
    target = before["incidences"][0]["key"]
    sign_in(browser, base, key)
    wait_view(browser, "section.client")
    go(browser, f"#/closings/{closing_id}", "#incidences")

    button = f"{row_of('#incidences', target)}.querySelector('button[data-key]')"
    browser.evaluate(f"{button}.focus()")
    press(browser, "Enter")
    browser.wait_for("document.activeElement.id === 'review-note'")
    browser.call("Input.insertText", text="Looks fine")
    press(browser, "Enter", modifiers=2)  # Ctrl+Enter sends
    browser.wait_for("document.getElementById('review-dialog-message').innerText.includes('(403)')")
    message = texts(browser, "#review-dialog-message")[0]
    assert "needs the analyst role" in message, message
    assert browser.evaluate("document.getElementById('review-dialog-submit').disabled")
    mark_view(browser)
    browser.evaluate("document.getElementById('review-dialog-cancel').click()")
    wait_view(browser, "#review-denied")
    assert focused(browser) == "review-denied"
    assert browser.evaluate("!document.querySelector('#incidences button[data-key]')")

    click(browser, "#close-month", "#month-denied")
    assert browser.evaluate("!document.getElementById('close-month')")
    assert focused(browser) == "month-denied"

    # The audit trail is an admin's; an account's history is every key's.
    go(browser, f"#/closings/{closing_id}/audit", "#audit-denied")
    go(browser, f"#/closings/{closing_id}", "#incidences")
    click(browser, "#incidences a[href*='/accounts/5101/']", "#audit-events")
    closing = api_get(base, key, f"/closings/{closing_id}")
    history = api_get(base, key, f"/clients/{closing['client_id']}/accounts/5101/history")
    assert history["items"], "the account was created through the API"
    assert_events(browser, history["items"])
    assert api_get(base, key, f"/closings/{closing_id}/incidences") == before
    assert api_get(base, key, f"/closings/{closing_id}")["status"] == "open"
    assert_stayed_home(browser, base, key, statuses=(403,))
