"""What the web console's browser tests share: a closing with a history, made through the
API of a real server and processed by a real worker, and ways to drive and read the page."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.conftest import bearer
from tests.e2e.browser import DevTools, off_host
from tests.helpers import API, create_closing, upload

CHART = [
    {"code": "1101", "name": "Caja", "name_en": "Cash", "classification": "current_assets"},
    {"code": "4101", "name": "Ventas", "name_en": None, "classification": "revenue"},
    {"code": "5101", "name": "Costo", "name_en": "Cost", "classification": None},
]
HEADER = "fecha,comprobante,cuenta,tipo_doc,glosa,debe,haber\n"
# Iteration 1: V2 unbalanced, V3 out of period with an unknown account and document type.
LEDGER_1 = HEADER + (
    "2026-10-01,V1,1101,FAC,venta,100.00,0\n"
    "2026-10-01,V1,4101,FAC,venta,0,100.00\n"
    "2026-10-02,V2,5101,FAC,costo,30.00,0\n"
    "2026-10-02,V2,1101,FAC,costo,0,20.00\n"
    "2026-09-30,V3,9999,XX,viejo,5,0\n"
    "2026-09-30,V3,1101,FAC,viejo,0,5\n"
)
# Iteration 2: V2 balanced (resolved); V4 and V5 bring new keys and change others.
LEDGER_2 = LEDGER_1.replace("0,20.00", "0,30.00") + (
    "2026-09-29,V4,9999,,nuevo,8,0\n"
    "2026-09-29,V4,1101,FAC,nuevo,0,8\n"
    "2026-10-05,V5,7777,BOL,suelto,3,0\n"
)
# Iteration 3 (english_names_updated): 4101 gets its English name, resolving one more key.
NAMED_4101 = [{"code": "4101", "name": "Ventas", "name_en": "Sales", "classification": "revenue"}]

Worker = Callable[[], Awaitable[None]]


@dataclass
class History:
    """The seeded closing, and each iteration's incidences per type as its snapshot said."""

    client_id: str
    closing_id: str
    client_name: str
    by_type: dict[int, dict[str, int]] = field(default_factory=dict)


async def seed_history(base: str, analyst_key: str, run_worker: Worker) -> History:
    """A client with a closing processed three times (initial, ledger_replaced,
    english_names_updated), and a client with no closing."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        name = "Comercial Andes SpA"
        closing = await create_closing(
            http,
            analyst_key,
            chart=CHART,
            doc_types=[{"code": "FAC", "name": "Factura"}],
            name=name,
        )
        # Markup in a name must show as text: injected, it would also load /x and break the CSP.
        markup = 'Sin Cierres <img src="/x" onerror="alert(1)"> Ltda'
        created = await http.post(
            f"{API}/clients", json={"name": markup}, headers=bearer(analyst_key)
        )
        assert created.status_code == 201, created.text
        history = History(closing.client_id, closing.id, name)

        async def processed() -> None:
            await run_worker()
            snapshot = await http.get(
                f"{API}/closings/{closing.id}/incidences", headers=bearer(analyst_key)
            )
            assert snapshot.status_code == 200, snapshot.text
            document = snapshot.json()
            history.by_type[document["iteration"]] = {
                kind: tally["incidences"]
                for kind, tally in document["statistics"]["by_type"].items()
            }

        for ledger in (LEDGER_1, LEDGER_2):
            response = await upload(http, analyst_key, closing.id, ledger.encode())
            assert response.status_code == 202, response.text
            await processed()
        put = await http.put(
            f"{API}/clients/{closing.client_id}/accounts",
            json=NAMED_4101,
            headers=bearer(analyst_key),
        )
        assert put.status_code == 200 and put.json()["iterations"], put.text
        await processed()
    assert sorted(history.by_type) == [1, 2, 3]
    return history


def api_get(base: str, key: str, path: str, **params: Any) -> Any:
    """An /api/v1 answer, as the test's own reference for what the page must show."""
    response = httpx.get(f"{base}{API}{path}", params=params, headers=bearer(key), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


# --- driving the page ---------------------------------------------------------------------


def sign_in(devtools: DevTools, base: str, key: str) -> None:
    """Open the console and type the key into its form, then Enter, as a keyboard user would."""
    devtools.call("Page.navigate", url=f"{base}/ui")
    devtools.wait_for("!!document.getElementById('api-key')")
    devtools.evaluate("document.getElementById('api-key').focus()")
    devtools.call("Input.insertText", text=key)
    press(devtools, "Enter")


def press(devtools: DevTools, key: str, modifiers: int = 0) -> None:
    """A key press on the focused element (`modifiers`: 2 is Ctrl, 8 is Shift)."""
    codes = {"Enter": 13, "Tab": 9, "Escape": 27}
    text = {"Enter": "\r"}.get(key) if not modifiers & 2 else None
    for kind in ("keyDown", "keyUp"):
        params: dict[str, Any] = {"type": kind, "key": key, "code": key, "modifiers": modifiers}
        params["windowsVirtualKeyCode"] = codes[key]
        if kind == "keyDown" and text:
            params["text"] = text
        devtools.call("Input.dispatchKeyEvent", **params)


def focused(devtools: DevTools) -> str:
    """The id of the focused element."""
    return str(devtools.evaluate("document.activeElement ? document.activeElement.id : ''"))


def mark_view(devtools: DevTools) -> None:
    """Mark what the view shows now, so that wait_view waits for its replacement."""
    devtools.evaluate("document.querySelector('#view > *')?.setAttribute('data-old', '')")


def wait_view(devtools: DevTools, ready: str) -> None:
    """Wait until a new view is rendered (not loading) and holds the `ready` selector."""
    devtools.wait_for(
        "!document.querySelector('#view > [data-old]')"
        " && !document.getElementById('view').hasAttribute('aria-busy')"
        f" && !!document.querySelector({json.dumps(ready)})"
    )


def go(devtools: DevTools, route: str, ready: str) -> None:
    """Navigate the console to `route` (its hash) and wait for `ready`."""
    mark_view(devtools)
    devtools.evaluate(f"location.hash = {json.dumps(route)}")
    wait_view(devtools, ready)


def click(devtools: DevTools, selector: str, ready: str) -> None:
    """Click what `selector` finds and wait for the view it leads to."""
    mark_view(devtools)
    devtools.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
    wait_view(devtools, ready)


def rows(devtools: DevTools, table: str) -> list[list[str]]:
    """The text of each body cell of a table, row by row."""
    value = devtools.evaluate(
        f"[...document.querySelectorAll({json.dumps(table + ' tbody tr')})]"
        ".map((tr) => [...tr.cells].map((cell) => cell.innerText.trim()))"
    )
    return list(value)


def texts(devtools: DevTools, selector: str) -> list[str]:
    """The text of every element `selector` finds."""
    found = devtools.evaluate(
        f"[...document.querySelectorAll({json.dumps(selector)})].map((e) => e.innerText.trim())"
    )
    return list(found)


def figure(text: str) -> str:
    """A number as the page shows it, without its grouping (the browser's locale is en-US)."""
    return text.replace(",", "").removeprefix("#")


# --- checking the page against the API ----------------------------------------------------


def assert_stayed_home(
    devtools: DevTools, base: str, key: str, statuses: tuple[int, ...] = ()
) -> None:
    """No request left the host, none carried the key in its URL, and the page reported no
    error but the refusals it expected (the browser reports each response of `statuses`)."""
    devtools.evaluate("1")  # read the events still queued
    assert off_host(devtools.requests, base) == []
    assert not [url for url in devtools.requests if key in url]
    expected = tuple(f"status of {status}" for status in statuses)
    assert [error for error in devtools.errors if not any(e in error for e in expected)] == []


def assert_iterations(devtools: DevTools, listed: list[dict[str, Any]]) -> None:
    """The iteration table: the listed iterations, with their own diff's counts."""
    shown = rows(devtools, "#iterations")
    assert [[r[0], r[1], r[2], r[3], r[6], r[7], r[8]] for r in shown] == [
        [
            f"#{item['number']}",
            item["status"],
            item["trigger"] + "".join(f" + {merged}" for merged in item["coalesced_triggers"]),
            item["requested_by"],
            *(str(len(item["diff"][part])) for part in ("new", "resolved", "changed")),
        ]
        for item in listed
    ]
    assert {item["requested_by"] for item in listed} == {"e2e-analyst"}
    assert devtools.evaluate(
        "[...document.querySelectorAll('#iterations tbody td:nth-child(5) time')]"
        ".map((time) => time.getAttribute('datetime'))"
    ) == [item["queued_at"] for item in listed]
    for row, item in zip(shown, listed, strict=True):
        assert_duration(row[5], item["duration_ms"])


def assert_parse_record(devtools: DevTools, iteration: dict[str, Any]) -> None:
    """An iteration's own page, reached from the history, says how its file was read."""
    click(devtools, f"#iterations a[href$='/iterations/{iteration['number']}']", "#parse")
    parse = iteration["parse"]
    facts = devtools.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#parse [data-field]')]"
        ".map((fact) => [fact.dataset.field, fact.querySelector('dd').innerText.trim()]))"
    )
    assert facts == {
        "kind": "CSV",
        "encoding": parse["encoding"],
        "delimiter": "comma (,)",
        "decimal_separator": "point (.), detected from the amounts",
        "rows_read": str(parse["rows_read"]),
        "blank_rows_skipped": str(parse["blank_rows_skipped"]),
    }
    assert parse["delimiter"] == "," and parse["decimal_separator_detected"] is True
    assert rows(devtools, "#parse-headers") == [[k, v] for k, v in parse["headers"].items()]
    assert texts(devtools, "#iteration-diff")[0].startswith(
        f"{len(iteration['diff']['new'])} new, {len(iteration['diff']['resolved'])} resolved,"
    )


def assert_incidences(devtools: DevTools, snapshot: dict[str, Any]) -> None:
    """The incidence table holds the snapshot page's incidences, in its order."""
    incidences, page = snapshot["incidences"], snapshot["page"]
    shown = [
        [row[0], row[1], row[3], figure(row[4]), figure(row[5]), figure(row[6]), row[8]]
        for row in rows(devtools, "#incidences")
    ]
    assert shown == [
        [
            i["key"], i["severity"], i["message"], str(i["movement_count"]),
            i["debit_total"], i["credit_total"], f"#{i['first_seen_iteration']}",
        ]
        for i in incidences
    ]  # fmt: skip
    first, total = page["offset"] + 1, page["total"]
    caption = texts(devtools, "#incidences caption")[0]
    assert caption == f"Incidences {first}–{first + len(incidences) - 1} of {total}"


def assert_duration(text: str, duration_ms: int) -> None:
    """The page's duration is the API's duration_ms (in ms under a second, else in s)."""
    if duration_ms < 1000:
        assert text == f"{duration_ms} ms"
    else:
        assert text.endswith(" s") and abs(float(text.split()[0]) - duration_ms / 1000) <= 0.06


def assert_diff(devtools: DevTools, diff: dict[str, Any]) -> None:
    """The diff page lists the API diff's new, resolved and changed keys, in its order."""
    assert texts(devtools, "#diff-new li") == diff["new"]
    assert texts(devtools, "#diff-resolved li") == diff["resolved"]
    changed = [change["key"] for change in diff["changed"]]
    assert texts(devtools, "#diff-changed tbody th") == changed


def number(text: str) -> float:
    """A figure as the page shows it ("1,234.5 %", "12 ms"), as a number."""
    return float(figure(text.split(" ")[0]))


# The operations page's figures: (check, part of its observed value).
OPERATIONS_FIGURES = {
    ("queue:depth", None),
    ("workers:count", None),
    ("workers:throughput", "movements_per_minute"),
    ("workers:throughput", "iterations_per_minute"),
    ("api:responseTime", None),
    ("api:errorRate", None),
    ("cache:hitRate", None),
}


def assert_operations(devtools: DevTools) -> dict[str, Any]:
    """The operations page shows the /health document it was answered: status, score, the
    operator's figures, every check with its recommendation. That document."""
    health: dict[str, Any] = json.loads(devtools.body_of("/health"))
    checks = health["checks"]
    tiles = devtools.evaluate(
        "[...document.querySelectorAll('#health-tiles [data-check]')].map((tile) =>"
        " [tile.dataset.check, tile.dataset.part || null,"
        "  tile.querySelector('.value').innerText.trim()])"
    )
    shown = {(name, part): text for name, part, text in tiles}
    assert shown.pop(("status", None)) == health["status"]
    assert number(shown.pop(("score", None))) == health["score"]
    assert set(shown) == OPERATIONS_FIGURES
    for (name, part), text in shown.items():
        value = checks[name][0].get("observedValue")
        if part is not None:
            value = value[part]
        assert (text == "—") if value is None else (number(text) == value), (name, part, text)
    entries = [(name, entry) for name, listed in checks.items() for entry in listed]
    assert [[row[0], row[1], row[3]] for row in rows(devtools, "#checks")] == [
        [name, entry["status"], entry.get("output", "")] for name, entry in entries
    ]
    warnings = [(name, entry) for name, entry in entries if entry["status"] != "pass"]
    assert texts(devtools, "#recommendations li") == [
        f"{entry['status']} {name}: {entry['output']}" for name, entry in warnings
    ]
    return health
