// The header every page of a closing shares: where it is, its state, and its tabs.

import { get } from "../api.js";
import { h, status } from "../dom.js";

export async function loadClosing(closingId) {
  const closing = await get(`/closings/${encodeURIComponent(closingId)}`);
  const client = await get(`/clients/${closing.client_id}`);
  return { closing, client };
}

const TABS = [
  ["", "Incidences"],
  ["/history", "History"],
  ["/diff", "Diff"],
  ["/audit", "Audit trail"],
];

// `tab` is the current tab's path suffix; `title` names the page within the closing.
export function closingHeader({ closing, client }, tab, title) {
  const base = `#/closings/${closing.id}`;
  const snapshot = closing.snapshot
    ? ` · snapshot of iteration ${closing.snapshot.iteration}`
    : " · no snapshot yet";
  return h(
    "header",
    { class: "page-header" },
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Clients"), ` / ${client.name}`),
    h("h1", {}, `${client.name} · ${closing.period} · ${title}`),
    h("p", { class: "meta" }, "Closing ", status(closing.status), snapshot),
    h(
      "nav",
      { "aria-label": "Closing", class: "tabs" },
      h(
        "ul",
        {},
        TABS.map(([suffix, label]) =>
          h(
            "li",
            {},
            h("a", { href: base + suffix, "aria-current": suffix === tab ? "page" : null }, label),
          ),
        ),
      ),
    ),
  );
}
