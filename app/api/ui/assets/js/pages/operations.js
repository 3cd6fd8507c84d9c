// Operations: the service's own health document (/health), with every check and what to do
// about the ones that warn.

import { health } from "../api.js";
import { count, dataTable, h, status, when } from "../dom.js";

// The checks shown up front; every check, these included, is in the table below.
const HIGHLIGHTS = [
  ["queue:depth", "Queue depth (iterations waiting)"],
  ["workers:count", "Live workers"],
  ["cache:hitRate", "Cache hit rate"],
];

export async function operationsPage({ go }) {
  const document = await health();
  const checks = Object.entries(document.checks).flatMap(([name, entries]) =>
    entries.map((entry) => ({ name, ...entry })),
  );
  const byName = Object.fromEntries(checks.map((check) => [check.name, check]));
  const tile = (name, label, value, extra) =>
    h("div", { class: "tile", "data-check": name }, h("dt", {}, label), h("dd", {}, value, extra));
  return h(
    "section",
    {},
    h("h1", {}, "Operations"),
    h(
      "p",
      { class: "meta" },
      `Service ${document.serviceId ?? ""} ${document.releaseId ?? ""}, from /health. `,
      h("button", { type: "button", id: "refresh", onclick: () => go("/operations") }, "Refresh"),
    ),
    h(
      "dl",
      { id: "health-tiles", class: "tiles" },
      tile("status", "Status", status(document.status)),
      tile(
        "score",
        "Health score",
        document.score === undefined ? "—" : `${Math.round(document.score * 100)} %`,
      ),
      HIGHLIGHTS.filter(([name]) => byName[name]).map(([name, label]) =>
        tile(
          name,
          label,
          observed(byName[name]),
          byName[name].output ? h("small", {}, byName[name].output) : null,
        ),
      ),
    ),
    dataTable({
      id: "checks",
      caption: "Every check, with what to do when it warns",
      rows: checks,
      columns: [
        { label: "Check", cell: (check) => check.name },
        { label: "Status", cell: (check) => status(check.status) },
        { label: "Observed", numeric: true, cell: observed },
        { label: "Recommendation or note", cell: (check) => check.output ?? "" },
        { label: "Component", cell: (check) => check.componentType ?? "" },
        { label: "Checked at", cell: (check) => when(check.time) },
      ],
    }),
  );
}

function observed(check) {
  const value = check.observedValue;
  if (value === undefined || value === null) return "—";
  const shown = typeof value === "number" ? count(value) : String(value);
  if (check.observedUnit === "percent") return `${shown} %`;
  return check.observedUnit ? `${shown} ${check.observedUnit}` : shown;
}
