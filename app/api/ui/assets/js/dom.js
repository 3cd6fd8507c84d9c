// DOM and formatting helpers. Pages build elements with h(), never from HTML strings, so
// nothing the API returns (client names, descriptions, keys) can turn into markup.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === "function") element.addEventListener(name.replace(/^on/, ""), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  element.append(
    ...children
      .flat(Infinity)
      .filter((child) => child !== null && child !== undefined && child !== false)
      .map((child) => (child instanceof Node ? child : String(child))),
  );
  return element;
}

// A polite live region: tells screen readers what changed without moving their focus.
export function announce(message) {
  const region = document.getElementById("announcer");
  region.textContent = "";
  // A fresh text node after a tick is announced even when the message repeats.
  setTimeout(() => {
    region.textContent = message;
  }, 50);
}

const numbers = new Intl.NumberFormat();
const separators = Object.fromEntries(
  numbers.formatToParts(12345.6).map((part) => [part.type, part.value]),
);

export function count(value) {
  return value === null || value === undefined ? "—" : numbers.format(value);
}

// An amount exactly as the API wrote it (a decimal string), only regrouped for reading:
// converting it to a float could change it.
export function amount(text) {
  if (text === null || text === undefined) return "—";
  const [whole, fraction] = String(text).split(".");
  const sign = whole.startsWith("-") ? "-" : "";
  const digits = whole.replace(/^-/, "").replace(/\B(?=(\d{3})+(?!\d))/g, separators.group || ",");
  return sign + digits + (fraction === undefined ? "" : (separators.decimal || ".") + fraction);
}

export function when(iso) {
  if (!iso) return "—";
  return h("time", { datetime: iso }, new Date(iso).toLocaleString());
}

export function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${ms} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${String(Math.round(seconds % 60)).padStart(2, "0")} s`;
}

// A table inside a scrollable, focusable region (wide tables scroll on a phone instead of
// widening the page). `columns`: [{label, cell: (row) => content, numeric}]; the first
// column heads each row for screen readers.
export function dataTable({ id, caption, columns, rows, empty = "Nothing to show." }) {
  if (rows.length === 0) return h("p", { id, class: "empty" }, empty);
  const head = h(
    "tr",
    {},
    columns.map((column) =>
      h("th", { scope: "col", class: column.numeric ? "num" : null }, column.label),
    ),
  );
  const body = rows.map((row) => tableRow(columns, row));
  const table = h(
    "table",
    { id },
    h("caption", {}, caption),
    h("thead", {}, head),
    h("tbody", {}, body),
  );
  return h(
    "div",
    { class: "table-scroll", tabindex: "0", role: "region", "aria-label": caption },
    table,
  );
}

// Each cell repeats its column's label (data-label): on a phone, rows are shown as cards
// that print it beside the value. The content sits in one <span> so it stays one item there.
export function tableRow(columns, row) {
  return h(
    "tr",
    {},
    columns.map((column, index) =>
      h(
        index === 0 ? "th" : "td",
        {
          scope: index === 0 ? "row" : null,
          class:
            [column.numeric ? "num" : "", column.nowrap ? "nowrap" : ""].join(" ").trim() || null,
          "data-label": column.label,
        },
        h("span", {}, column.cell(row)),
      ),
    ),
  );
}

// A labelled <select>; `options` are [value, text] pairs.
export function select({ id, label, options, value }) {
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    h(
      "select",
      { id, name: id },
      options.map(([optionValue, text]) =>
        h(
          "option",
          { value: optionValue, selected: String(optionValue) === String(value ?? "") },
          text,
        ),
      ),
    ),
  );
}

export function status(text) {
  return h("span", { class: `badge badge-${text}` }, text);
}

// The console's address of a page: "#/path?query", leaving out empty query values.
export function href(path, query = {}) {
  const kept = Object.entries(query).filter(
    ([, value]) => value !== "" && value !== null && value !== undefined,
  );
  const search = new URLSearchParams(kept).toString();
  return `#${path}${search ? `?${search}` : ""}`;
}
