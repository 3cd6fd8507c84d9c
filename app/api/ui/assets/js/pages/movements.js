// The movements behind one incidence, a page at a time (the API's cursor pages), appended
// below the ones already shown.

import { describe, get } from "../api.js";
import { amount, announce, count, dataTable, h, href, tableRow } from "../dom.js";
import { closingHeader, loadClosing } from "./closing-header.js";

const PAGE_SIZE = 100;

const COLUMNS = [
  { label: "Line", numeric: true, cell: (row) => count(row.line) },
  { label: "Date", cell: (row) => row.date ?? "—" },
  {
    label: "Account",
    cell: (row) => [
      h("code", {}, row.account_code ?? "—"),
      row.account_name ? ` ${row.account_name}` : "",
    ],
  },
  { label: "Voucher", cell: (row) => row.voucher ?? "—" },
  {
    label: "Document",
    cell: (row) => [row.document_type, row.document_number].filter(Boolean).join(" ") || "—",
  },
  { label: "Description", cell: (row) => row.description ?? "" },
  { label: "Debit", numeric: true, cell: (row) => amount(row.debit) },
  { label: "Credit", numeric: true, cell: (row) => amount(row.credit) },
  {
    label: "Unreadable",
    cell: (row) => (row.invalid_field ? `${row.invalid_field}: ${row.invalid_reason ?? ""}` : ""),
  },
];

export async function movementsPage({ params: [closingId, key], query }) {
  const loaded = await loadClosing(closingId);
  const limit = Math.min(1000, Number.parseInt(query.get("limit") ?? "", 10) || PAGE_SIZE);
  const path = `/closings/${loaded.closing.id}/incidences/${encodeURIComponent(key)}/movements`;
  const first = await get(path, { limit });
  const table = dataTable({
    id: "movements",
    caption: `Movements of ${key}`,
    rows: first.items,
    columns: COLUMNS,
    empty: "No movement.",
  });
  const shown = h("p", { id: "movements-count", class: "meta" });
  const message = h("p", { role: "alert" });
  const more = h("button", { type: "button", id: "load-more" }, "Load more movements");
  let cursor = first.next_cursor;
  let loadedCount = first.items.length;
  const update = () => {
    shown.textContent = `${count(loadedCount)} movements shown${cursor ? "; more to load" : ", all of them"}.`;
    more.hidden = !cursor;
  };
  more.addEventListener("click", async () => {
    more.disabled = true;
    message.textContent = "";
    try {
      const page = await get(path, { limit, cursor });
      table.querySelector("tbody").append(...page.items.map((row) => tableRow(COLUMNS, row)));
      cursor = page.next_cursor;
      loadedCount += page.items.length;
      update();
      announce(`${page.items.length} more movements loaded.`);
    } catch (error) {
      message.textContent = describe(error);
    } finally {
      more.disabled = false;
    }
  });
  update();
  return h(
    "section",
    {},
    closingHeader(loaded, null, "Movements"),
    h(
      "p",
      {},
      h("a", { href: href(`/closings/${loaded.closing.id}`) }, "← Back to the incidences"),
    ),
    h("h2", {}, "Incidence ", h("code", { id: "incidence-key" }, key)),
    table,
    shown,
    message,
    more,
  );
}
