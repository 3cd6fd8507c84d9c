// A closing's current snapshot: the month's state (close, reopen), its statistics by
// severity, type and review, then a filterable, paged table of its incidences, each leading
// to the movements behind it and with its review (acknowledge, reopen).

import { get } from "../api.js";
import { amount, count, dataTable, h, href, select, status, when } from "../dom.js";
import { reviewBlocked, reviewButton, reviewState } from "../reviews.js";
import { accountLink } from "./audit.js";
import { closingHeader, loadClosing } from "./closing-header.js";
import { monthSection, reviewAction } from "./closing-month.js";

const PAGE_SIZE = 50;

export async function closingPage({ params: [closingId], query, go, refresh }) {
  const loaded = await loadClosing(closingId);
  const { closing } = loaded;
  const header = closingHeader(loaded, "", "Incidences");
  const month = monthSection(closing, refresh);
  if (!closing.snapshot) return h("section", {}, header, month, noSnapshot(closing));
  const filters = {
    type: query.get("type") || "",
    severity: query.get("severity") || "",
    review: query.get("review") || "",
  };
  const limit = whole(query.get("limit"), PAGE_SIZE);
  const offset = whole(query.get("offset"), 0);
  const snapshot = await get(`/closings/${closing.id}/incidences`, { ...filters, limit, offset });
  const path = `/closings/${closing.id}`;
  const pageQuery = (changes) => ({
    ...filters,
    ...(limit === PAGE_SIZE ? {} : { limit }),
    ...changes,
  });
  const onReview = reviewAction(closing, refresh, "review-denied");
  return h(
    "section",
    {},
    header,
    month,
    h(
      "p",
      { class: "meta" },
      `Iteration ${snapshot.iteration}, computed `,
      when(snapshot.computed_at),
    ),
    summary(snapshot.statistics, path),
    h(
      "section",
      { "aria-labelledby": "incidences-title" },
      h("h2", { id: "incidences-title" }, "Incidences"),
      filterForm(snapshot.statistics, filters, (chosen) =>
        go(path, pageQuery({ ...chosen, offset: 0 })),
      ),
      reviewNotice(closing),
      incidenceTable(closing, snapshot, onReview),
      pager(snapshot.page, (newOffset) => href(path, pageQuery({ offset: newOffset }))),
    ),
  );
}

function whole(text, fallback) {
  const value = Number.parseInt(text ?? "", 10);
  return Number.isInteger(value) && value >= 0 ? value : fallback;
}

function noSnapshot(closing) {
  const latest = closing.latest_iteration;
  const state = latest
    ? `Iteration ${latest.number} is ${latest.status}.`
    : "No ledger has been uploaded yet.";
  return h(
    "p",
    { class: "empty" },
    `This closing has no snapshot: no iteration has succeeded yet. ${state}`,
  );
}

const FIGURES = [
  ["movements_total", "Movements", count],
  ["movements_rejected", "Rejected rows", count],
  ["movements_with_incidences", "Movements with incidences", count],
  ["incidences_total", "Incidences", count],
  ["debit_total", "Debit total", amount],
  ["credit_total", "Credit total", amount],
];

function summary(statistics, path) {
  const severities = Object.entries(statistics.by_severity).map(([severity, tally]) => ({
    severity,
    ...tally,
  }));
  const types = Object.entries(statistics.by_type).map(([type, tally]) => ({ type, ...tally }));
  const tallies = [
    { label: "Incidences", numeric: true, cell: (row) => count(row.incidences) },
    { label: "Movements", numeric: true, cell: (row) => count(row.movements) },
  ];
  const typeLink = (row) => h("a", { href: href(path, { type: row.type }) }, row.type);
  return h(
    "section",
    { "aria-labelledby": "summary-title" },
    h("h2", { id: "summary-title" }, "Summary"),
    h(
      "dl",
      { id: "key-figures", class: "tiles" },
      FIGURES.map(([name, label, format]) =>
        h(
          "div",
          { class: "tile", "data-stat": name },
          h("dt", {}, label),
          h("dd", {}, format(statistics[name])),
        ),
      ),
    ),
    h(
      "div",
      { class: "columns" },
      dataTable({
        id: "by-severity",
        caption: "By severity",
        rows: severities,
        columns: [{ label: "Severity", cell: (row) => status(row.severity) }, ...tallies],
      }),
      dataTable({
        id: "by-type",
        caption: "By type",
        rows: types,
        columns: [{ label: "Type", cell: typeLink }, ...tallies],
      }),
    ),
    reviewFigures(statistics.reviews, path),
    statistics.rules_skipped.length
      ? h(
          "p",
          { id: "rules-skipped" },
          "Rules skipped (the ledger lacks their column): ",
          statistics.rules_skipped.join(", "),
        )
      : null,
  );
}

const REVIEW_FIGURES = [
  ["open", "Open (to review)", { review: "open" }],
  ["acknowledged", "Acknowledged", { review: "acknowledged" }],
  ["stale", "Acknowledged, now stale", null],
];

// statistics.reviews: how many incidences are open and acknowledged, and how many of those
// acknowledged have changed their figures since.
function reviewFigures(reviews, path) {
  if (!reviews) return null;
  return h(
    "section",
    { "aria-labelledby": "reviews-title" },
    h("h3", { id: "reviews-title" }, "Reviews"),
    h(
      "dl",
      { id: "review-figures", class: "tiles" },
      REVIEW_FIGURES.map(([name, label, filter]) =>
        h(
          "div",
          { class: "tile", "data-review": name },
          h("dt", {}, filter ? h("a", { href: href(path, filter) }, label) : label),
          h("dd", {}, count(reviews[name])),
        ),
      ),
    ),
  );
}

function reviewNotice(closing) {
  const blocked = reviewBlocked(closing);
  if (blocked === "denied") {
    return h(
      "p",
      { id: "review-denied", class: "notice", tabindex: "-1" },
      "This key may not review incidences (the API answered 403): acknowledging or reopening one needs an analyst or admin key.",
    );
  }
  if (blocked === "closed") {
    return h(
      "p",
      { id: "review-closed", class: "notice" },
      "The month is closed: reopen it to acknowledge or reopen incidences.",
    );
  }
  return null;
}

function filterForm(statistics, filters, apply) {
  const types = Object.keys(statistics.by_type).sort();
  const form = h(
    "form",
    {
      class: "filters",
      "aria-label": "Filter incidences",
      onsubmit: (event) => {
        event.preventDefault();
        apply({
          type: form.elements["filter-type"].value,
          severity: form.elements["filter-severity"].value,
          review: form.elements["filter-review"].value,
        });
      },
    },
    select({
      id: "filter-type",
      label: "Type",
      value: filters.type,
      options: [["", "All types"], ...types.map((type) => [type, type])],
    }),
    select({
      id: "filter-severity",
      label: "Severity",
      value: filters.severity,
      options: [
        ["", "All severities"],
        ["error", "error"],
        ["warning", "warning"],
      ],
    }),
    select({
      id: "filter-review",
      label: "Review",
      value: filters.review,
      options: [
        ["", "Any review"],
        ["open", "open"],
        ["acknowledged", "acknowledged"],
      ],
    }),
    h("button", { type: "submit", id: "filter-apply" }, "Filter"),
  );
  return form;
}

function incidenceTable(closing, snapshot, onReview) {
  const closingId = closing.id;
  const { total, offset } = snapshot.page;
  const shown = snapshot.incidences.length;
  const range = shown
    ? `${count(offset + 1)}–${count(offset + shown)} of ${count(total)}`
    : `none of ${count(total)}`;
  const movementsLink = (incidence) =>
    h(
      "a",
      {
        href: `#/closings/${closingId}/incidences/${encodeURIComponent(incidence.key)}`,
        title: "Movements of this incidence",
      },
      breakable(incidence.key),
    );
  return dataTable({
    id: "incidences",
    caption: `Incidences ${range}`,
    empty: total ? "No incidence on this page." : "No incidence matches these filters.",
    rows: snapshot.incidences,
    columns: [
      { label: "Key", cell: movementsLink },
      { label: "Severity", cell: (row) => status(row.severity) },
      { label: "Element", cell: (row) => element(row, closing.client_id) },
      { label: "Message", cell: (row) => row.message },
      { label: "Movements", numeric: true, cell: (row) => count(row.movement_count) },
      { label: "Debit", numeric: true, cell: (row) => amount(row.debit_total) },
      { label: "Credit", numeric: true, cell: (row) => amount(row.credit_total) },
      { label: "Dates", cell: dates },
      { label: "First seen", numeric: true, cell: (row) => `#${row.first_seen_iteration}` },
      {
        label: "Review",
        cell: (row) => [
          reviewState(row.review),
          reviewButton({ closing, incidence: row, onReview }),
        ],
      },
    ],
  });
}

// A key may wrap after its type ("TYPE:" then the code): a long one does not widen the table.
function breakable(key) {
  const colon = key.indexOf(":") + 1;
  return colon > 0 ? [key.slice(0, colon), h("wbr"), key.slice(colon)] : key;
}

// One date when the first and the last are the same day; each date stays on one line.
function dates({ first_date: first, last_date: last }) {
  if (!first) return "—";
  const day = (date) => h("span", { class: "nowrap" }, date);
  return first === last ? day(first) : [day(first), " – ", day(last)];
}

// What the incidence is about; an account links to its history (who changed it, when).
function element(incidence, clientId) {
  const { kind, code, name } = incidence.element;
  return h(
    "span",
    {},
    `${kind} `,
    kind === "account" && code !== ""
      ? accountLink(clientId, code)
      : h("code", {}, code === "" ? "(empty)" : code),
    name ? ` ${name}` : "",
  );
}

function pager(page, pageHref) {
  const limit = page.limit ?? page.total;
  const previous = page.offset > 0 ? Math.max(0, page.offset - limit) : null;
  const next = page.offset + limit < page.total ? page.offset + limit : null;
  const link = (id, target, label) =>
    target === null
      ? h("span", { class: "disabled", "aria-disabled": "true" }, label)
      : h("a", { id, href: pageHref(target) }, label);
  if (previous === null && next === null) return null; // one page: nothing to turn
  return h(
    "nav",
    { class: "pager", "aria-label": "Incidence pages" },
    link("page-previous", previous, "← Previous"),
    link("page-next", next, "Next →"),
  );
}
