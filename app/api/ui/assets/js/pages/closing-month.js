// Closing and reopening the month from the closing page (PATCH /closings/{id}). The API
// refuses to close while error incidences are neither resolved nor acknowledged (409
// close-blocked, with `unreviewed_keys`): the page then lists them, each with its review
// action, and an admin may close anyway (force), after a confirmation.

import { denied, describe, send } from "../api.js";
import { openDialog } from "../dialog.js";
import { announce, count, h, href, status, when } from "../dom.js";
import { reviewButton, reviewDialog } from "../reviews.js";

// The last refusal per closing, with the reviews made since from its list (the API's own
// answers), so the list survives the page being shown again after each review.
const refusals = new Map();

// A review the API just saved: the refusal's list shows it.
function rememberReview(closingId, saved) {
  refusals.get(closingId)?.reviews.set(saved.key, saved);
}

// What a review button does: the dialog, then the page shown again with the review (the API
// saved it first) and focus back on the button, or on `deniedFocusId` if the key may no longer
// review.
export function reviewAction(closing, refresh, deniedFocusId) {
  return async (incidence, button) => {
    const { saved, deniedNow } = await reviewDialog({
      closingId: closing.id,
      incidence,
      returnTo: button,
    });
    if (saved) {
      rememberReview(closing.id, saved);
      announce(`${saved.key} is ${saved.status}.`);
      refresh(button.id);
    } else if (deniedNow) refresh(deniedFocusId);
  };
}

// The month's state and its actions; `refresh(focusId)` shows the page again.
export function monthSection(closing, refresh) {
  const open = closing.status === "open";
  if (!open) refusals.delete(closing.id);
  const message = h("p", { id: "month-message", role: "alert" });
  const act = async (button, body, done) => {
    message.textContent = "";
    button.disabled = true; // one request at a time
    try {
      await send("PATCH", `/closings/${closing.id}`, body);
    } catch (error) {
      button.disabled = false;
      if (error.status === 403) {
        denied.add("close");
        return refresh("month-denied"); // it says so, where the button was
      }
      if (isCloseBlocked(error)) {
        const at = new Date().toISOString();
        refusals.set(closing.id, { problem: error.problem, reviews: new Map(), at });
        return refresh("close-blocked-title");
      }
      message.textContent = describe(error);
      return;
    }
    refusals.delete(closing.id);
    announce(done);
    refresh(open ? "reopen-month" : "close-month");
  };
  const button = denied.has("close")
    ? null
    : open
      ? h(
          "button",
          {
            type: "button",
            id: "close-month",
            onclick: (event) =>
              act(event.currentTarget, { status: "closed" }, "The month is closed."),
          },
          "Close the month",
        )
      : h(
          "button",
          {
            type: "button",
            id: "reopen-month",
            onclick: (event) =>
              act(event.currentTarget, { status: "open" }, "The month is open again."),
          },
          "Reopen the month",
        );
  const refusal = open ? refusals.get(closing.id) : null;
  return h(
    "section",
    { class: "month", "aria-labelledby": "month-title" },
    h("h2", { id: "month-title" }, "The month"),
    h(
      "p",
      { id: "month-state" },
      "This closing is ",
      status(closing.status),
      open
        ? ". Closing it is refused while an error incidence is neither resolved nor acknowledged."
        : ": uploads, re-processing and reviews are refused until it is reopened.",
    ),
    button,
    denied.has("close")
      ? h(
          "p",
          { id: "month-denied", class: "notice", tabindex: "-1" },
          "This key may not close or reopen the month (the API answered 403): it needs an analyst or admin key.",
        )
      : null,
    message,
    refusal ? refusalPanel(closing, refusal, refresh) : null,
  );
}

function isCloseBlocked(error) {
  return error.status === 409 && error.problem?.type === "/problems/close-blocked";
}

function refusalPanel(closing, refusal, refresh) {
  const keys = refusal.problem.unreviewed_keys ?? [];
  const total = refusal.problem.unreviewed_count ?? keys.length;
  const onReview = reviewAction(closing, refresh, "close-blocked-title");
  const item = (key) => {
    const review = refusal.reviews.get(key);
    const incidence = { key, review: review ?? { status: "open" } };
    return h(
      "li",
      { "data-key": key },
      h(
        "a",
        { href: `#/closings/${closing.id}/incidences/${encodeURIComponent(key)}` },
        h("code", {}, key),
      ),
      " ",
      review ? status(review.status) : null,
      " ",
      reviewButton({ closing, incidence, onReview, prefix: "blocked-review" }),
    );
  };
  const force = denied.has("force")
    ? h(
        "p",
        { id: "force-denied", class: "notice", tabindex: "-1" },
        "Only an admin may close anyway (the API answered 403 for this key).",
      )
    : h(
        "button",
        {
          type: "button",
          id: "force-close",
          class: "danger",
          onclick: (event) => confirmForce(closing, total, event.currentTarget, refresh),
        },
        "Close anyway…",
      );
  const dismiss = h(
    "button",
    {
      type: "button",
      id: "close-blocked-dismiss",
      onclick: () => {
        refusals.delete(closing.id);
        refresh("close-month");
      },
    },
    "Dismiss",
  );
  return h(
    "section",
    { id: "close-blocked", class: "blocked", "aria-labelledby": "close-blocked-title" },
    h("h3", { id: "close-blocked-title", tabindex: "-1" }, "The month cannot be closed yet"),
    h(
      "p",
      {},
      "The API refused to close it (409, ",
      when(refusal.at),
      `): ${count(total)} error incidences are neither resolved nor acknowledged. `,
      "Acknowledge them (or resolve them in the ledger or the reference data), then close again. ",
      h(
        "a",
        { href: href(`/closings/${closing.id}`, { severity: "error", review: "open" }) },
        "Show the open errors in the table",
      ),
    ),
    h("ul", { id: "unreviewed-keys", class: "keys" }, keys.map(item)),
    keys.length < total
      ? h(
          "p",
          { class: "hint" },
          `The API listed the first ${count(keys.length)} of ${count(total)}.`,
        )
      : null,
    h("div", { class: "actions" }, force, dismiss),
  );
}

async function confirmForce(closing, total, button, refresh) {
  const wasDenied = denied.has("force");
  const closed = await openDialog({
    id: "force-dialog",
    title: "Close the month anyway?",
    fields: h(
      "p",
      { id: "force-warning" },
      `${count(total)} error incidences are neither resolved nor acknowledged. Only an admin may close anyway, and the audit trail records it with their keys.`,
    ),
    submitLabel: "Close anyway",
    danger: true,
    returnTo: button,
    onSubmit: async () => {
      try {
        return await send("PATCH", `/closings/${closing.id}`, { status: "closed", force: true });
      } catch (error) {
        if (error.status === 403) denied.add("force");
        throw error;
      }
    },
  });
  if (closed) {
    refusals.delete(closing.id);
    announce("The month is closed (forced).");
    refresh("reopen-month");
  } else if (!wasDenied && denied.has("force")) refresh("force-denied");
}
