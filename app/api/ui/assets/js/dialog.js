// A modal form (the native <dialog>: the page behind it is inert, Escape cancels it). Focus
// starts on its first field (or its submit button) and goes back to `returnTo` when it closes.

import { ApiError, describe } from "./api.js";
import { h } from "./dom.js";

// `fields`: the form's content before its buttons; `onSubmit(form)` does the work and returns
// its result, or throws (the dialog then stays open and says what happened; a 403 also
// disables the submit button, since trying again cannot help). Resolves to the result, or
// to null when the dialog was cancelled.
export function openDialog({ id, title, fields, submitLabel, danger, onSubmit, returnTo }) {
  const message = h("p", { id: `${id}-message`, class: "dialog-message", role: "alert" });
  const submit = h(
    "button",
    { type: "submit", id: `${id}-submit`, class: danger ? "danger" : null },
    submitLabel,
  );
  const cancel = h("button", { type: "button", id: `${id}-cancel` }, "Cancel");
  const form = h(
    "form",
    { class: "dialog-form" },
    fields,
    message,
    h("div", { class: "dialog-buttons" }, submit, cancel),
  );
  const dialog = h(
    "dialog",
    { id, "aria-labelledby": `${id}-title` },
    h("h2", { id: `${id}-title` }, title),
    form,
  );
  let result = null;
  const closed = new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (returnTo?.isConnected) returnTo.focus();
      resolve(result);
    });
  });
  cancel.addEventListener("click", () => dialog.close());
  // Not while the API is answering: the page must learn what it answered.
  dialog.addEventListener("cancel", (event) => {
    if (dialog.hasAttribute("aria-busy")) event.preventDefault();
  });
  form.addEventListener("keydown", (event) => {
    // Ctrl+Enter (or Cmd+Enter) sends the form from a multi-line note too.
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      if (!submit.disabled) form.requestSubmit(submit);
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = cancel.disabled = true;
    dialog.setAttribute("aria-busy", "true");
    message.textContent = "";
    try {
      result = await onSubmit(form);
      dialog.close();
    } catch (error) {
      message.textContent = describe(error);
      if (!(error instanceof ApiError)) console.error(error); // a bug of the console itself
      submit.disabled = error instanceof ApiError && error.status === 403;
    } finally {
      dialog.removeAttribute("aria-busy");
      cancel.disabled = false;
    }
  });
  // Inside the view: a page that is replaced takes its dialog with it.
  document.getElementById("view").append(dialog);
  dialog.showModal();
  (form.querySelector("textarea, input, select") || submit).focus();
  return closed;
}
