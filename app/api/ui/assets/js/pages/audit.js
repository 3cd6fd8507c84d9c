// The audit trail (SPEC §9): a closing's events (GET /audit?closing_id=, admins only), and one
// account's history (GET /clients/{id}/accounts/{code}/history, any key). Newest first, a
// page at a time (keyset pages), appended below the ones shown.

import { ApiError, describe, get } from "../api.js";
import { announce, count, dataTable, h, href, tableRow, when } from "../dom.js";
import { closingHeader, loadClosing } from "./closing-header.js";

const PAGE_SIZE = 50;

export async function closingAuditPage({ params: [closingId], query }) {
  const loaded = await loadClosing(closingId);
  const header = closingHeader(loaded, "/audit", "Audit trail");
  const params = { closing_id: loaded.closing.id, limit: pageSize(query) };
  let first;
  try {
    first = await get("/audit", params);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 403) throw error;
    return h(
      "section",
      {},
      header,
      h(
        "p",
        { id: "audit-denied", class: "notice" },
        "The audit trail of a closing is for admin keys: the API answered 403 for this one. ",
        "An account's history is open to every key: follow an account from the incidences.",
      ),
    );
  }
  return h("section", {}, header, events("/audit", params, first, "Events of this closing"));
}

export async function accountHistoryPage({ params: [clientId, code], query }) {
  const client = await get(`/clients/${encodeURIComponent(clientId)}`);
  const path = `/clients/${client.id}/accounts/${encodeURIComponent(code)}/history`;
  const params = { limit: pageSize(query) };
  const first = await get(path, params);
  return h(
    "section",
    {},
    h(
      "header",
      { class: "page-header" },
      h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Clients"), ` / ${client.name}`),
      h("h1", {}, `${client.name} · account `, h("code", {}, code), " · History"),
      h(
        "p",
        { class: "meta" },
        "Every change of this account of the chart of accounts, newest first.",
      ),
    ),
    events(path, params, first, `Changes of account ${code}`),
  );
}

function pageSize(query) {
  const value = Number.parseInt(query.get("limit") ?? "", 10);
  return Number.isInteger(value) && value >= 1 ? Math.min(value, 1000) : PAGE_SIZE;
}

const COLUMNS = [
  { label: "When", nowrap: true, cell: (event) => when(event.at) },
  {
    label: "Who",
    cell: (event) => [event.actor.name, h("span", { class: "muted" }, ` (${event.actor.role})`)],
  },
  { label: "Action", cell: (event) => h("code", {}, event.action) },
  {
    label: "Resource",
    cell: (event) => [`${event.resource.type} `, h("code", {}, event.resource.id)],
  },
  { label: "What changed", cell: (event) => details(event.details) },
  { label: "Request", cell: (event) => (event.request_id ? h("code", {}, event.request_id) : "—") },
];

function events(path, params, first, caption) {
  const table = dataTable({
    id: "audit-events",
    caption,
    rows: first.items,
    columns: COLUMNS,
    empty: "No event recorded.",
  });
  const shown = h("p", { id: "audit-count", class: "meta" });
  const message = h("p", { role: "alert" });
  const more = h("button", { type: "button", id: "audit-more" }, "Load older events");
  let cursor = first.next_cursor;
  let loaded = first.items.length;
  const update = () => {
    shown.textContent = `${count(loaded)} events shown${cursor ? "; older ones to load" : ", all of them"}.`;
    more.hidden = !cursor;
  };
  more.addEventListener("click", async () => {
    more.disabled = true;
    message.textContent = "";
    try {
      const page = await get(path, { ...params, cursor });
      table.querySelector("tbody")?.append(...page.items.map((row) => tableRow(COLUMNS, row)));
      cursor = page.next_cursor;
      loaded += page.items.length;
      update();
      announce(`${page.items.length} older events loaded.`);
    } catch (error) {
      message.textContent = describe(error);
    } finally {
      more.disabled = false;
    }
  });
  update();
  return h("div", {}, table, shown, message, more);
}

// What an event changed, as text: `field: before → after` for each change, other members as
// they are (lists joined). Every value is inserted as text.
function details(members) {
  const lines = [];
  const value = (item) =>
    item === null || item === undefined
      ? "—"
      : typeof item === "object"
        ? JSON.stringify(item)
        : String(item);
  const change = (name, item) => {
    if (item && typeof item === "object" && !Array.isArray(item) && "after" in item) {
      lines.push(`${name}: ${value(item.before)} → ${value(item.after)}`);
    } else if (Array.isArray(item)) {
      lines.push(`${name}: ${item.map(value).join(", ")}`);
    } else {
      lines.push(`${name}: ${value(item)}`);
    }
  };
  for (const [name, item] of Object.entries(members ?? {})) {
    if (name === "changes" && item && typeof item === "object") {
      for (const [field, fieldChange] of Object.entries(item)) change(field, fieldChange);
    } else change(name, item);
  }
  return lines.length
    ? h(
        "ul",
        { class: "details" },
        lines.map((line) => h("li", {}, line)),
      )
    : "—";
}

// An account's code in an incidence, as a link to its history.
export function accountLink(clientId, code) {
  return h(
    "a",
    {
      href: href(`/clients/${clientId}/accounts/${encodeURIComponent(code)}/history`),
      title: "Every change of this account",
    },
    h("code", {}, code),
  );
}
