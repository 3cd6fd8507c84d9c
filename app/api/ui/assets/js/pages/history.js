// A closing's history: its newest iterations (why each ran, who asked, when, how long, what
// it found new, resolved and changed), and a chart of its incidences per iteration by type.
// The list is the API's paged one, followed by `next_cursor` up to a bound; every figure is
// in the listed iterations themselves (`diff`, `summary.by_type`).

import { typeChart } from "../chart.js";
import { count, dataTable, duration, h, href, status, when } from "../dom.js";
import {
  HISTORY_BOUND,
  HISTORY_PAGE,
  incidencesByType,
  newestIterations,
  typeSeries,
} from "../history-data.js";
import { closingHeader, loadClosing } from "./closing-header.js";

// `limit` (the API's page size) and `newest` (how many to show) may be given in the address.
function bounded(text, fallback) {
  const value = Number.parseInt(text ?? "", 10);
  return Number.isInteger(value) && value >= 1 ? Math.min(value, HISTORY_BOUND) : fallback;
}

export async function historyPage({ params: [closingId], query }) {
  const loaded = await loadClosing(closingId);
  const id = loaded.closing.id;
  const pageSize = bounded(query.get("limit"), HISTORY_PAGE);
  const bound = bounded(query.get("newest"), HISTORY_BOUND);
  const { items: iterations, more } = await newestIterations(id, pageSize, bound);
  const succeeded = iterations.filter((iteration) => iteration.status === "succeeded").reverse();
  return h(
    "section",
    {},
    closingHeader(loaded, "/history", "History"),
    h("h2", { id: "iterations-title" }, "Iterations"),
    h(
      "p",
      { id: "history-bound", class: "meta" },
      more
        ? `The newest ${count(iterations.length)} iterations; older ones are left out (this page shows at most the newest ${count(bound)}).`
        : `All ${count(iterations.length)} iterations of this closing.`,
      ` Read from the API ${count(pageSize)} at a time.`,
    ),
    iterationTable(id, iterations),
    h("h2", { id: "chart-title" }, "Incidences per iteration, by type"),
    succeeded.length
      ? chartWithTable(succeeded)
      : h("p", { class: "empty" }, "No iteration has succeeded yet."),
  );
}

function iterationTable(closingId, iterations) {
  // Each iteration's previous succeeded one, to link its own diff.
  const previous = new Map();
  const oldestFirst = [...iterations]
    .reverse()
    .filter((iteration) => iteration.status === "succeeded");
  for (let index = 1; index < oldestFirst.length; index++) {
    previous.set(oldestFirst[index].number, oldestFirst[index - 1].number);
  }
  const diffLink = (iteration) =>
    previous.has(iteration.number)
      ? h(
          "a",
          {
            href: href(`/closings/${closingId}/diff`, {
              from: previous.get(iteration.number),
              to: iteration.number,
            }),
          },
          `#${previous.get(iteration.number)} → #${iteration.number}`,
        )
      : "—";
  return dataTable({
    id: "iterations",
    caption: "Iterations, newest first",
    empty: "No iteration yet: upload a ledger.",
    rows: iterations,
    columns: [
      {
        label: "Iteration",
        numeric: true,
        cell: (row) =>
          h(
            "a",
            {
              href: `#/closings/${closingId}/iterations/${row.number}`,
              title: "This iteration: its figures and how its file was read",
            },
            `#${row.number}`,
          ),
      },
      { label: "Status", cell: iterationStatus },
      {
        label: "Trigger",
        cell: (row) => [row.trigger, ...row.coalesced_triggers.map((merged) => ` + ${merged}`)],
      },
      { label: "Requested by", cell: (row) => row.requested_by ?? "—" },
      { label: "Requested at", cell: (row) => when(row.queued_at) },
      { label: "Duration", numeric: true, cell: (row) => duration(row.duration_ms) },
      { label: "New", numeric: true, cell: (row) => (row.diff ? count(row.diff.new.length) : "—") },
      {
        label: "Resolved",
        numeric: true,
        cell: (row) => (row.diff ? count(row.diff.resolved.length) : "—"),
      },
      {
        label: "Changed",
        numeric: true,
        cell: (row) => (row.diff ? count(row.diff.changed.length) : "—"),
      },
      { label: "Diff", cell: diffLink },
    ],
  });
}

export function iterationStatus(iteration) {
  const progress =
    iteration.status === "running" ? ` ${Math.round(iteration.progress * 100)} %` : "";
  const failure = iteration.error?.detail
    ? h("span", { class: "muted" }, ` ${iteration.error.detail}`)
    : null;
  return h("span", {}, status(iteration.status), progress, failure);
}

function chartWithTable(succeeded) {
  const points = incidencesByType(succeeded);
  const series = typeSeries(points);
  const rows = points.map((point, index) => ({ number: point.number, index })).reverse();
  const typeColumns = series.map((line) => ({
    label: line.label,
    numeric: true,
    cell: (row) => count(line.values[row.index]),
  }));
  const label =
    "Line chart of incidences per iteration by type; the table below has the same figures.";
  return h(
    "div",
    {},
    series.length
      ? typeChart({
          id: "history-chart",
          label,
          iterations: points.map((point) => point.number),
          series,
        })
      : h("p", { class: "empty" }, "No iteration found any incidence."),
    dataTable({
      id: "by-iteration",
      caption: "Incidences per iteration by type, newest first",
      rows,
      columns: [
        { label: "Iteration", numeric: true, cell: (row) => `#${row.number}` },
        ...typeColumns,
      ],
    }),
  );
}
