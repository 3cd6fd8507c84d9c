// Operations: the service's own health document (/health) — its score, the figures an
// operator watches (queue, workers, throughput, latency, errors, cache), what to do about
// every check that warns, and every check.

import { health } from "../api.js";
import { count, dataTable, h, status, when } from "../dom.js";

// The figures shown up front: [check, part of its observed value or null, label]. Every
// check, these included, is in the table below.
const FIGURES = [
  ["queue:depth", null, "Queue depth (iterations waiting)"],
  ["workers:count", null, "Live workers"],
  ["workers:throughput", "movements_per_minute", "Movements per minute"],
  ["workers:throughput", "iterations_per_minute", "Iterations per minute"],
  ["api:responseTime", null, "API latency (p95)"],
  ["api:errorRate", null, "API error rate (5xx)"],
  ["cache:hitRate", null, "Cache hit rate"],
];

export async function operationsPage({ go }) {
  const document = await health();
  const checks = Object.entries(document.checks).flatMap(([name, entries]) =>
    entries.map((entry) => ({ name, ...entry })),
  );
  const byName = Object.fromEntries(checks.map((check) => [check.name, check]));
  const warnings = checks.filter((check) => check.status !== "pass");
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
      tile("score", "Health score", score(document.score)),
      FIGURES.filter(([name]) => byName[name]).map(([name, part, label]) => {
        const check = byName[name];
        const value = part ? check.observedValue?.[part] : check.observedValue;
        return tile(name, label, figure(value, part ? null : check.observedUnit), check, part);
      }),
    ),
    h("h2", { id: "recommendations-title" }, "What to do"),
    warnings.length
      ? h(
          "ul",
          { id: "recommendations", "aria-labelledby": "recommendations-title" },
          warnings.map((check) =>
            h(
              "li",
              { "data-check": check.name },
              status(check.status),
              " ",
              h("strong", {}, check.name),
              `: ${check.output ?? "no recommendation given"}`,
            ),
          ),
        )
      : h("p", { id: "recommendations", class: "empty" }, "Nothing: every check passes."),
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

// A figure tile; `check` adds its status and note (a recommendation when it warns).
function tile(name, label, value, check = null, part = null) {
  return h(
    "div",
    { class: "tile", "data-check": name, "data-part": part },
    h("dt", {}, label),
    h(
      "dd",
      {},
      h("span", { class: "value" }, value),
      check && check.status !== "pass" ? [" ", status(check.status)] : null,
      check?.output && !part ? h("small", {}, check.output) : null,
    ),
  );
}

// The score (0..1, 1 when every check passes) as the API gives it, with a meter.
function score(value) {
  if (value === undefined || value === null) return "—";
  return [
    count(value),
    " ",
    h("meter", { min: 0, max: 1, low: 0.5, high: 0.99, optimum: 1, value, "aria-hidden": "true" }),
  ];
}

function figure(value, unit) {
  if (value === undefined || value === null) return "—";
  const shown = typeof value === "number" ? count(value) : String(value);
  if (unit === "percent") return `${shown} %`;
  return unit ? `${shown} ${unit}` : shown;
}

function observed(check) {
  const value = check.observedValue;
  if (value !== null && typeof value === "object") {
    // workers:throughput: {movements_per_minute, iterations_per_minute}
    return Object.entries(value)
      .map(([name, part]) => `${count(part)} ${name.replaceAll("_", " ")}`)
      .join(", ");
  }
  return figure(value, check.observedUnit);
}
