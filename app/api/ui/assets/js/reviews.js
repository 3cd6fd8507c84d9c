// Reviews of incidences (SPEC §10): each incidence's review as the snapshot shows it, and the
// dialog that acknowledges an incidence with a note, or opens it again
// (PUT /api/v1/closings/{id}/reviews/{key}, analysts and admins).
//
// The API has no "who am I": a viewer key learns it may not review from the 403 of its first
// try, which the dialog explains; the pages then hide the actions for that key.

import { denied, send } from "./api.js";
import { openDialog } from "./dialog.js";
import { h, status, when } from "./dom.js";

export const NOTE_MAX = 2000; // the API's bound on a note

// The id of an incidence's review button: a page shown again after a review puts the focus
// back on it. (An id has no spaces: encoded, a key keeps none.)
export function reviewButtonId(key, prefix = "review") {
  return `${prefix}-${encodeURIComponent(key)}`;
}

// An incidence's review: its status, whether it is stale, its note, who and when.
export function reviewState(review) {
  const current = review ?? { status: "open" };
  return h(
    "span",
    {
      class: "review",
      "data-review-status": current.status,
      "data-stale": current.stale ? "true" : null,
    },
    status(current.status),
    current.stale
      ? h(
          "span",
          { class: "badge badge-stale", title: "Its figures changed since it was acknowledged" },
          "stale",
          h(
            "span",
            { class: "visually-hidden" },
            ": its figures changed since it was acknowledged",
          ),
        )
      : null,
    current.note ? h("q", { class: "review-note" }, current.note) : null,
    current.by
      ? h(
          "small",
          { class: "review-by" },
          `by ${current.by}`,
          current.at ? [", ", when(current.at)] : null,
        )
      : null,
  );
}

// Why this key cannot review this closing now, or null when it may try.
export function reviewBlocked(closing) {
  if (denied.has("review")) return "denied";
  if (closing.status !== "open") return "closed";
  return null;
}

// The Acknowledge / Reopen button of an incidence ({key, review, message}); none at all for
// a key the API refused reviews to.
export function reviewButton({ closing, incidence, onReview, prefix = "review" }) {
  const blocked = reviewBlocked(closing);
  if (blocked === "denied") return null;
  const acknowledged = incidence.review?.status === "acknowledged";
  const action = acknowledged ? "Reopen" : "Acknowledge";
  const button = h(
    "button",
    {
      type: "button",
      id: reviewButtonId(incidence.key, prefix),
      class: "small",
      "data-key": incidence.key,
      "data-action": acknowledged ? "reopen" : "acknowledge",
      "aria-label": `${action} ${incidence.key}`,
      disabled: blocked === "closed",
      title: blocked === "closed" ? "The closing is closed: reopen it to review" : null,
    },
    `${action}…`,
  );
  button.addEventListener("click", () => onReview(incidence, button));
  return button;
}

// The review dialog for `incidence`; resolves to {saved: the API's review or null when
// cancelled, deniedNow: whether the API just said this key may not review}.
export async function reviewDialog({ closingId, incidence, returnTo }) {
  const acknowledging = incidence.review?.status !== "acknowledged";
  const wasDenied = denied.has("review");
  const fields = [
    h(
      "p",
      {},
      "Incidence ",
      h("code", { id: "review-key" }, incidence.key),
      incidence.message ? `: ${incidence.message}` : "",
    ),
    acknowledging ? null : h("p", {}, "Now: ", reviewState(incidence.review)),
    h(
      "div",
      { class: "field" },
      h(
        "label",
        { for: "review-note" },
        acknowledging ? "Note: why it is accepted" : "Note: why it is open again",
      ),
      h("textarea", {
        id: "review-note",
        name: "note",
        rows: 4,
        maxlength: NOTE_MAX,
        "aria-describedby": "review-note-hint",
      }),
      h(
        "p",
        { id: "review-note-hint", class: "hint" },
        `Optional, up to ${NOTE_MAX.toLocaleString()} characters; everyone who reads the closing sees it. Ctrl+Enter sends.`,
      ),
    ),
  ];
  const saved = await openDialog({
    id: "review-dialog",
    title: acknowledging ? "Acknowledge this incidence" : "Open this incidence again",
    fields,
    submitLabel: acknowledging ? "Acknowledge" : "Reopen",
    returnTo,
    onSubmit: async (form) => {
      const note = form.elements.note.value.trim();
      const path = `/closings/${closingId}/reviews/${encodeURIComponent(incidence.key)}`;
      try {
        return await send("PUT", path, {
          status: acknowledging ? "acknowledged" : "open",
          note: note || null,
        });
      } catch (error) {
        if (error.status === 403) denied.add("review");
        throw error;
      }
    },
  });
  return { saved, deniedNow: !wasDenied && denied.has("review") };
}
