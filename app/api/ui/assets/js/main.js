// The console's shell: hash routing, the key form, and loading and error states. Pages are
// async functions that fetch what they show and return its element; the shell swaps it in.

import { ApiError, apiKey, describe, get } from "./api.js";
import { h, href } from "./dom.js";
import { accountHistoryPage, closingAuditPage } from "./pages/audit.js";
import { clientsPage } from "./pages/clients.js";
import { closingPage } from "./pages/closing.js";
import { diffPage } from "./pages/diff.js";
import { historyPage } from "./pages/history.js";
import { iterationPage } from "./pages/iteration.js";
import { movementsPage } from "./pages/movements.js";
import { operationsPage } from "./pages/operations.js";

const ROUTES = [
  { path: /^\/$/, page: clientsPage, nav: "clients", needsKey: true },
  { path: /^\/closings\/([^/]+)$/, page: closingPage, nav: "clients", needsKey: true },
  { path: /^\/closings\/([^/]+)\/history$/, page: historyPage, nav: "clients", needsKey: true },
  { path: /^\/closings\/([^/]+)\/diff$/, page: diffPage, nav: "clients", needsKey: true },
  { path: /^\/closings\/([^/]+)\/audit$/, page: closingAuditPage, nav: "clients", needsKey: true },
  {
    path: /^\/clients\/([^/]+)\/accounts\/([^/]+)\/history$/,
    page: accountHistoryPage,
    nav: "clients",
    needsKey: true,
  },
  {
    path: /^\/closings\/([^/]+)\/iterations\/([0-9]+)$/,
    page: iterationPage,
    nav: "clients",
    needsKey: true,
  },
  {
    path: /^\/closings\/([^/]+)\/incidences\/(.+)$/,
    page: movementsPage,
    nav: "clients",
    needsKey: true,
  },
  // /health needs no key: operators can look at it before signing in.
  { path: /^\/operations$/, page: operationsPage, nav: "operations", needsKey: false },
];

const view = document.getElementById("view");
const forgetButton = document.getElementById("forget-key");
let shown = 0; // the latest navigation; a slower, older one must not overwrite it

// "#/closings/ID?type=X" → {path: "/closings/ID", query}
function currentRoute() {
  const hash = window.location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = hash.split("?", 2);
  return { path, query: new URLSearchParams(search) };
}

function go(path, query) {
  const target = href(path, query);
  // The same address fires no hashchange: show it again (a filter applied twice, Refresh).
  if (target === window.location.hash) show();
  else window.location.hash = target;
}

// `quiet`: the page is shown again in place (after an action), without the loading state in
// between, and `focus` names the element to put the focus on.
async function show({ quiet = false, focus = null } = {}) {
  const token = ++shown;
  const { path, query } = currentRoute();
  const route = ROUTES.find((candidate) => candidate.path.test(path));
  markNavigation(route?.nav);
  forgetButton.hidden = !apiKey.get();
  if (!route) return render(token, notFound(path));
  if (route.needsKey && !apiKey.get()) return render(token, keyForm());
  // The focused element is focused again when the new view has it (filters, pagers).
  const focused = focus || document.activeElement?.id;
  view.setAttribute("aria-busy", "true");
  if (!quiet) view.replaceChildren(h("p", { class: "loading", role: "status" }, "Loading…"));
  const refresh = (id) => show({ quiet: true, focus: id });
  try {
    const params = path.match(route.path).slice(1).map(decodeURIComponent);
    render(token, await route.page({ params, query, go, refresh }), focused, quiet);
  } catch (error) {
    render(token, failure(error));
  }
}

function render(token, node, focused, quiet = false) {
  if (token !== shown) return;
  view.replaceChildren(node);
  view.removeAttribute("aria-busy");
  const heading = view.querySelector("h1");
  document.title = `${heading ? heading.textContent : "Console"} · Ledger Incidences`;
  // Move focus into the new view so keyboard and screen-reader users start there.
  const target =
    (focused && document.getElementById(focused)) ||
    view.querySelector("[autofocus]") ||
    heading ||
    view;
  if (target === heading) heading.setAttribute("tabindex", "-1");
  // Shown again in place, the page scrolls to the focus only when it is out of sight.
  target.focus({ preventScroll: !quiet && target !== heading && target !== view });
}

function markNavigation(current) {
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function keyForm(notice) {
  const input = h("input", {
    id: "api-key",
    name: "api-key",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    autofocus: true,
    "aria-describedby": "api-key-help",
  });
  const message = h("p", { id: "key-message", role: "alert" }, notice || "");
  const form = h(
    "form",
    { class: "key-form", onsubmit: (event) => signIn(event, input, message) },
    h("div", { class: "field" }, h("label", { for: "api-key" }, "API key"), input),
    h(
      "p",
      { id: "api-key-help", class: "hint" },
      "The key stays in this browser tab's session storage only: closing the tab forgets it. A viewer key is enough to look around.",
    ),
    h("button", { type: "submit" }, "Use this key"),
  );
  return h("section", { class: "signin" }, h("h1", {}, "Sign in with an API key"), message, form);
}

async function signIn(event, input, message) {
  event.preventDefault();
  const key = input.value.trim();
  if (!key) return;
  apiKey.set(key);
  message.textContent = "Checking the key…";
  try {
    await get("/clients"); // any viewer read tells whether the key is valid
  } catch (error) {
    if (error.status === 401) apiKey.forget();
    message.textContent = describe(error);
    return;
  }
  show();
}

function failure(error) {
  if (error instanceof ApiError && error.status === 401) {
    apiKey.forget(); // a refused key is no use: ask for another one
    forgetButton.hidden = true;
    return keyForm(describe(error));
  }
  if (!(error instanceof ApiError)) console.error(error); // a bug of the console itself
  const retry = h("button", { type: "button", id: "retry", onclick: show }, "Retry");
  if (error.retryAfter) waitBeforeRetry(retry, error.retryAfter);
  return h(
    "section",
    { class: "failure" },
    h("h1", {}, "Could not load this page"),
    h("p", { role: "alert", id: "error-message" }, describe(error)),
    retry,
  );
}

// The retry button stays disabled for as long as the 429 asked.
function waitBeforeRetry(button, seconds) {
  button.disabled = true;
  setTimeout(() => {
    button.disabled = false;
  }, seconds * 1000);
}

function notFound(path) {
  return h(
    "section",
    {},
    h("h1", {}, "No such page"),
    h(
      "p",
      {},
      `The console has no page at ${path}. `,
      h("a", { href: "#/" }, "Back to the clients"),
    ),
  );
}

// The hash is the router's: the skip link moves focus itself instead of changing it.
document.getElementById("skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  view.focus();
});
forgetButton.addEventListener("click", () => {
  apiKey.forget();
  show();
});
window.addEventListener("hashchange", show);
show();
