// A closing's history: every iteration (why it ran, who asked, when, how long, what it found
// new and resolved), and a chart of its incidences per iteration by type.

import { get } from "../api.js";
import { typeChart } from "../chart.js";
import { count, dataTable, duration, h, href, status, when } from "../dom.js";
import { incidencesByType, iterationsWithDiffs, typeSeries } from "../history-data.js";
import { closingHeader, loadClosing } from "./closing-header.js";

export async function historyPage({ params: [closingId] }) {
  const loaded = await loadClosing(closingId);
  const id = loaded.closing.id;
  // The snapshot before the list: the list then holds the snapshot's iteration.
  const snapshot = loaded.closing.snapshot
    ? await get(`/closings/${id}/incidences`, { limit: 1 })
    : null;
  const iterations = await iterationsWithDiffs(id);
  const succeeded = iterations.filter((iteration) => iteration.status === "succeeded").reverse();
  return h(
    "section",
    {},
    closingHeader(loaded, "/history", "History"),
    h("h2", { id: "iterations-title" }, "Iterations"),
    iterationTable(id, iterations),
    h("h2", { id: "chart-title" }, "Incidences per iteration, by type"),
    succeeded.length
      ? chartWithTable(succeeded, snapshot)
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
      { label: "Iteration", numeric: true, cell: (row) => `#${row.number}` },
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
      { label: "Diff", cell: diffLink },
    ],
  });
}

function iterationStatus(iteration) {
  const progress =
    iteration.status === "running" ? ` ${Math.round(iteration.progress * 100)} %` : "";
  const failure = iteration.error?.detail
    ? h("span", { class: "muted" }, ` ${iteration.error.detail}`)
    : null;
  return h("span", {}, status(iteration.status), progress, failure);
}

function chartWithTable(succeeded, snapshot) {
  const points = incidencesByType(succeeded, snapshot);
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
