// One iteration of a closing: why it ran and how it went, what it found, its diff against
// the previous succeeded iteration, and how its ledger file was read (its `parse` record).

import { get } from "../api.js";
import { count, dataTable, duration, h, href, when } from "../dom.js";
import { closingHeader, loadClosing } from "./closing-header.js";
import { iterationStatus } from "./history.js";

const SEPARATORS = { ",": "comma (,)", ";": "semicolon (;)", "\t": "tab", ".": "point (.)" };

export async function iterationPage({ params: [closingId, number] }) {
  const loaded = await loadClosing(closingId);
  const id = loaded.closing.id;
  const iteration = await get(`/closings/${id}/iterations/${number}`);
  return h(
    "section",
    {},
    closingHeader(loaded, null, `Iteration #${iteration.number}`),
    h("p", {}, h("a", { href: href(`/closings/${id}/history`) }, "← Back to the history")),
    run(iteration),
    iteration.summary ? found(iteration.summary) : null,
    iteration.diff ? diffSummary(id, iteration) : null,
    parseRecord(iteration.parse),
  );
}

function tiles(id, entries) {
  return h(
    "dl",
    { id, class: "facts" },
    entries
      .filter(([, , value]) => value !== undefined)
      .map(([name, label, value]) =>
        h("div", { "data-field": name }, h("dt", {}, label), h("dd", {}, value ?? "—")),
      ),
  );
}

function run(iteration) {
  return h(
    "section",
    { "aria-labelledby": "run-title" },
    h("h2", { id: "run-title" }, "The run"),
    tiles("iteration-run", [
      ["status", "Status", iterationStatus(iteration)],
      [
        "trigger",
        "Trigger",
        [iteration.trigger, ...iteration.coalesced_triggers.map((merged) => ` + ${merged}`)],
      ],
      ["requested_by", "Requested by", iteration.requested_by],
      ["notes", "Notes", iteration.notes],
      ["queued_at", "Requested at", when(iteration.queued_at)],
      ["started_at", "Started at", when(iteration.started_at)],
      ["finished_at", "Finished at", when(iteration.finished_at)],
      ["duration_ms", "Duration", duration(iteration.duration_ms)],
      ["movements_processed", "Movements processed", count(iteration.movements_processed)],
    ]),
    iteration.error
      ? h(
          "p",
          { id: "iteration-error", class: "notice" },
          `It failed: ${iteration.error.title ?? ""}. ${iteration.error.detail ?? ""}`,
        )
      : null,
  );
}

function found(summary) {
  const tally = (entries, id, caption, label) =>
    dataTable({
      id,
      caption,
      rows: Object.entries(entries ?? {}).map(([name, figures]) => ({ name, ...figures })),
      columns: [
        { label, cell: (row) => row.name },
        { label: "Incidences", numeric: true, cell: (row) => count(row.incidences) },
        { label: "Movements", numeric: true, cell: (row) => count(row.movements) },
      ],
    });
  return h(
    "section",
    { "aria-labelledby": "found-title" },
    h("h2", { id: "found-title" }, "What it found"),
    tiles("iteration-summary", [
      ["movements_total", "Movements", count(summary.movements_total)],
      ["movements_rejected", "Rejected rows", count(summary.movements_rejected)],
      [
        "movements_with_incidences",
        "Movements with incidences",
        count(summary.movements_with_incidences),
      ],
      ["incidences_total", "Incidences", count(summary.incidences_total)],
    ]),
    h(
      "div",
      { class: "columns" },
      tally(summary.by_severity, "iteration-by-severity", "By severity", "Severity"),
      tally(summary.by_type, "iteration-by-type", "By type", "Type"),
    ),
  );
}

function diffSummary(closingId, iteration) {
  const { diff } = iteration;
  return h(
    "section",
    { "aria-labelledby": "iteration-diff-title" },
    h("h2", { id: "iteration-diff-title" }, "Against the previous succeeded iteration"),
    h(
      "p",
      { id: "iteration-diff" },
      `${count(diff.new.length)} new, ${count(diff.resolved.length)} resolved, ${count(diff.changed.length)} changed, ${count(diff.unchanged)} unchanged. `,
      h(
        "a",
        { href: href(`/closings/${closingId}/diff`, { to: iteration.number }) },
        "See the keys",
      ),
    ),
  );
}

// How the ledger file was read (SPEC §3): what was detected, and which header each field
// was read from.
function parseRecord(parse) {
  const title = h("h2", { id: "parse-title" }, "How the file was read");
  if (!parse) {
    return h(
      "section",
      { "aria-labelledby": "parse-title" },
      title,
      h("p", { class: "empty" }, "Not recorded: the ledger was stored before this was kept."),
    );
  }
  const separator = (value) => (value === null ? "—" : (SEPARATORS[value] ?? value));
  const decimal =
    parse.decimal_separator === null
      ? "to be detected from the amounts"
      : `${separator(parse.decimal_separator)}, ${parse.decimal_separator_detected ? "detected from the amounts" : "given with the upload"}`;
  const headers = Object.entries(parse.headers).map(([field, header]) => ({ field, header }));
  return h(
    "section",
    { "aria-labelledby": "parse-title" },
    title,
    tiles("parse", [
      ["kind", "File kind", parse.kind.toUpperCase()],
      ["encoding", "Encoding", parse.encoding ?? "— (XLSX)"],
      ["delimiter", "Delimiter", parse.kind === "xlsx" ? "— (XLSX)" : separator(parse.delimiter)],
      ["decimal_separator", "Decimal separator", decimal],
      ["rows_read", "Rows read (header excluded)", count(parse.rows_read)],
      ["blank_rows_skipped", "Blank rows skipped", count(parse.blank_rows_skipped)],
    ]),
    dataTable({
      id: "parse-headers",
      caption: "The header each field was read from",
      rows: headers,
      columns: [
        { label: "Field", cell: (row) => h("code", {}, row.field) },
        { label: "Header in the file", cell: (row) => row.header },
      ],
    }),
  );
}
