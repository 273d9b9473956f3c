// The runs pages: start a run from a pasted suite (POST /runs/start), cancel a running one (DELETE /api/runs/{id})
// and keep the run page's status line in step with the progress part htmx re-fetches. Data reaches the DOM only
// through textContent.
"use strict";

// An error answer of the server as a sentence for a person.
function explainRunError(status, body, fallback) {
  const message = body && typeof body.error === "string" ? body.error : "";
  if (status === 502) return "ElevenLabs did not answer as expected. " + message;
  if (message) return message;
  return fallback + " (HTTP " + status + "). Please try again.";
}

async function sendJson(method, path, payload) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrfToken() },
      body: payload === undefined ? undefined : JSON.stringify(payload),
      credentials: "same-origin",
    });
  } catch (error) {
    return { status: 0, body: null };
  }
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    body = null;
  }
  return { status: response.status, body };
}

const UNREACHABLE = "Could not reach the callcheck server. Is it still running?";

function setUpRunForm(form) {
  const suite = form.querySelector("#suite-text");
  const concurrency = form.querySelector("#run-concurrency");
  const button = form.querySelector("#start-run");
  const errorBox = form.querySelector("#run-form-error");

  function showError(message, problems) {
    errorBox.replaceChildren();
    if (!message) return;
    const sentence = document.createElement("p");
    sentence.textContent = message;
    errorBox.append(sentence);
    if (problems && problems.length) {
      const list = document.createElement("ul");
      list.className = "problems";
      for (const problem of problems) {
        const item = document.createElement("li");
        item.textContent = String(problem);
        list.append(item);
      }
      errorBox.append(list);
    }
  }

  form.addEventListener("input", () => showError(""));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!suite.value.trim()) {
      showError("Paste a suite (YAML or JSON) first.");
      suite.focus();
      return;
    }
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    const label = button.textContent;
    button.textContent = "Starting…";
    const { status, body } = await sendJson("POST", "/runs/start", {
      suite: suite.value,
      concurrency: concurrency.value.trim() || "1",
    });
    if (status === 202 && body && body.id) {
      window.location.assign("/runs/" + encodeURIComponent(body.id));
      return;
    }
    showError(status === 0 ? UNREACHABLE : explainRunError(status, body, "The run could not be started"), body && body.problems);
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = label;
    // The button was disabled while waiting, which dropped the focus: give it to the suite, where the fix goes.
    suite.focus();
  });
}

function setUpRunPage(article) {
  const status = document.getElementById("run-status");
  const cancelStatus = document.getElementById("cancel-status");

  // The progress part is replaced every second while the run goes on: whatever had the keyboard focus in it (a
  // call's link, the Cancel button) gets it back in the new part, found by id or by where it leads; when it is gone
  // (Cancel, once pressed), the status line takes the focus, so the next Tab does not start over at the page's end.
  let focusKey = null;
  document.body.addEventListener("htmx:beforeSwap", (event) => {
    const active = document.activeElement;
    focusKey = null;
    if (event.detail.target.id !== "run-progress" || !active || !event.detail.target.contains(active)) return;
    if (active.id) focusKey = "#" + CSS.escape(active.id);
    else if (active.getAttribute("href")) focusKey = 'a[href="' + CSS.escape(active.getAttribute("href")) + '"]';
    else focusKey = "#run-status";
  });

  // The status line (aria-live) takes the sentence of the progress part the server just rendered.
  document.body.addEventListener("htmx:afterSettle", (event) => {
    if (focusKey && event.target.id === "run-progress") {
      const again = event.target.querySelector(focusKey) || document.getElementById("run-status");
      again.focus({ preventScroll: true });
      focusKey = null;
    }
    const part = event.target.id === "run-progress" ? event.target : null;
    if (part && part.dataset.sentence && status.textContent !== part.dataset.sentence) {
      status.textContent = part.dataset.sentence;
      status.className = "live-status tone-" + (part.dataset.tone || "live");
    }
  });

  // The Cancel button lives in the part htmx replaces, so listen on the article.
  article.addEventListener("click", async (event) => {
    const button = event.target.closest("#cancel-run");
    if (!button) return;
    // Disabling the button (and, later, its part dropping it) would leave the keyboard focus nowhere: it moves to
    // the run's status line (the cancel's own message, empty until now, is announced as it changes).
    status.focus({ preventScroll: true });
    button.disabled = true;
    cancelStatus.textContent = "Asking callcheck to cancel the run…";
    const { status: code, body } = await sendJson("DELETE", "/api/runs/" + encodeURIComponent(article.dataset.runId));
    if (code === 202) {
      cancelStatus.textContent =
        "Cancel requested: no new call will be placed. Calls already under way are followed to their end and reported.";
    } else if (code === 409) {
      cancelStatus.textContent = (body && body.error) || "This run is no longer running, so there is nothing to cancel.";
    } else if (code === 404) {
      cancelStatus.textContent = "This run no longer exists.";
    } else {
      cancelStatus.textContent = code === 0 ? UNREACHABLE : explainRunError(code, body, "The run could not be cancelled");
      button.disabled = false;
    }
    document.body.dispatchEvent(new CustomEvent("cc:run"));
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("run-form");
  if (form) setUpRunForm(form);
  const article = document.getElementById("run");
  if (article) setUpRunPage(article);
});
