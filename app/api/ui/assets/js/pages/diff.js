// The diff between any two succeeded iterations of a closing: which incidence keys are new,
// which were resolved, and which changed their figures.

import { get } from "../api.js";
import { amount, count, dataTable, h, select } from "../dom.js";
import { newestIterations } from "../history-data.js";
import { closingHeader, loadClosing } from "./closing-header.js";

// Past this many keys a list says how many more there are instead of growing the page.
const SHOWN = 1000;

export async function diffPage({ params: [closingId], query, go }) {
  const loaded = await loadClosing(closingId);
  const id = loaded.closing.id;
  const header = closingHeader(loaded, "/diff", "Diff");
  const numbers = (await newestIterations(id)).items
    .filter((iteration) => iteration.status === "succeeded")
    .map((iteration) => iteration.number)
    .sort((a, b) => a - b);
  if (numbers.length < 2) {
    return h(
      "section",
      {},
      header,
      h(
        "p",
        { class: "empty" },
        `A diff needs two succeeded iterations; this closing has ${numbers.length}.`,
      ),
    );
  }
  // By default the latest succeeded iteration against the one before it.
  const to = Number(query.get("to")) || numbers.at(-1);
  const from = Number(query.get("from")) || numbers[Math.max(0, numbers.indexOf(to) - 1)];
  const diff = await get(`/closings/${id}/diff`, { from, to });
  return h(
    "section",
    {},
    header,
    compareForm(numbers, from, to, (chosen) => go(`/closings/${id}/diff`, chosen)),
    h(
      "p",
      { id: "diff-summary", class: "meta" },
      `From iteration ${diff.from} to ${diff.to}: ${count(diff.new.length)} new, ${count(diff.resolved.length)} resolved, `,
      `${count(diff.changed.length)} changed, ${count(diff.unchanged)} unchanged.`,
    ),
    keyList("diff-new", "New", "Keys only in the later iteration.", diff.new),
    keyList("diff-resolved", "Resolved", "Keys only in the earlier iteration.", diff.resolved),
    h("h2", { id: "diff-changed-title" }, `Changed (${count(diff.changed.length)})`),
    dataTable({
      id: "diff-changed",
      caption: "Incidences whose movement count or totals changed",
      empty: "No incidence changed its figures.",
      rows: diff.changed.slice(0, SHOWN),
      columns: [
        { label: "Key", cell: (row) => h("code", {}, row.key) },
        {
          label: "Movements",
          numeric: true,
          cell: (row) => `${count(row.before.movement_count)} → ${count(row.after.movement_count)}`,
        },
        {
          label: "Debit",
          numeric: true,
          cell: (row) => `${amount(row.before.debit_total)} → ${amount(row.after.debit_total)}`,
        },
        {
          label: "Credit",
          numeric: true,
          cell: (row) => `${amount(row.before.credit_total)} → ${amount(row.after.credit_total)}`,
        },
      ],
    }),
    more(diff.changed.length),
  );
}

function compareForm(numbers, from, to, apply) {
  const options = [...numbers].reverse().map((number) => [number, `#${number}`]);
  const form = h(
    "form",
    {
      class: "filters",
      "aria-label": "Iterations to compare",
      onsubmit: (event) => {
        event.preventDefault();
        apply({ from: form.elements["diff-from"].value, to: form.elements["diff-to"].value });
      },
    },
    select({ id: "diff-from", label: "From iteration", options, value: from }),
    select({ id: "diff-to", label: "To iteration", options, value: to }),
    h("button", { type: "submit", id: "diff-apply" }, "Compare"),
  );
  return form;
}

function keyList(id, title, hint, keys) {
  return h(
    "section",
    { "aria-labelledby": `${id}-title` },
    h("h2", { id: `${id}-title` }, `${title} (${count(keys.length)})`),
    keys.length
      ? [
          h("p", { class: "hint" }, hint),
          h(
            "ul",
            { id, class: "keys" },
            keys.slice(0, SHOWN).map((key) => h("li", {}, h("code", {}, key))),
          ),
          more(keys.length),
        ]
      : h("p", { id, class: "empty" }, "None."),
  );
}

function more(total) {
  return total > SHOWN
    ? h(
        "p",
        { class: "hint" },
        `Showing the first ${count(SHOWN)} of ${count(total)}; the API's answer holds them all.`,
      )
    : null;
}
