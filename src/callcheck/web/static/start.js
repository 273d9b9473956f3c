// The start form: validates as you type, stores the context (POST /api/context), places the call (POST /api/call)
// and opens the call page. Errors are shown in words next to the button, never as a JSON dump.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("start-form");
  if (!form) return;
  const description = form.querySelector("#description");
  const scenario = form.querySelector("#scenario");
  const number = form.querySelector("#to_number");
  const numberStatus = form.querySelector("#number-status");
  const descriptionError = form.querySelector("#description-error");
  const button = form.querySelector("#place-call");
  const formError = form.querySelector("#form-error");
  // The server's own pattern and message (callcheck.domain.phone), so both sides say exactly the same thing.
  const e164 = new RegExp(form.dataset.e164Pattern);
  const e164Error = form.dataset.e164Error;
  const descriptionMissing = form.dataset.descriptionError;

  function checkNumber(final) {
    const value = number.value.trim();
    if (!value && !final) {
      numberStatus.textContent = "";
      numberStatus.className = "field-status";
      number.removeAttribute("aria-invalid");
      return true;
    }
    const ok = e164.test(value);
    numberStatus.textContent = ok ? "Valid number." : e164Error;
    numberStatus.className = ok ? "field-status ok" : "field-status bad";
    number.setAttribute("aria-invalid", ok ? "false" : "true");
    return ok;
  }

  function checkDescription() {
    const ok = description.value.trim() !== "";
    descriptionError.textContent = ok ? "" : descriptionMissing;
    descriptionError.hidden = ok;
    description.setAttribute("aria-invalid", ok ? "false" : "true");
    return ok;
  }

  number.addEventListener("input", () => checkNumber(false));
  // An error about the previous attempt no longer applies once the form is edited.
  form.addEventListener("input", () => showError(""));
  description.addEventListener("input", () => {
    if (description.getAttribute("aria-invalid") === "true") checkDescription();
  });
  for (const fill of form.querySelectorAll("[data-fill-number]")) {
    fill.addEventListener("click", () => {
      number.value = fill.dataset.fillNumber;
      checkNumber(true);
      number.focus();
    });
  }

  function showError(message) {
    formError.textContent = message;
  }

  // Turn an error answer of the API into a sentence for a person.
  function explain(status, body) {
    const message = body && typeof body.error === "string" ? body.error : "";
    if (status === 502) {
      return "ElevenLabs could not place the call. " + (message || "It answered with an error.") + " Try again in a moment.";
    }
    if (status === 500 && message.startsWith("Missing required")) {
      return "callcheck is not set up to place calls yet. " + message + ". See Setup above.";
    }
    if (status === 409) return message || "This call is already being placed.";
    if (message) return message;
    return "Something went wrong (HTTP " + status + "). Please try again.";
  }

  async function post(path, payload) {
    let response;
    try {
      response = await fetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrfToken() },
        body: JSON.stringify(payload),
        credentials: "same-origin",
      });
    } catch (error) {
      throw new Error("Could not reach the callcheck server. Is it still running?");
    }
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    if (!response.ok) throw new Error(explain(response.status, body));
    return body || {};
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("");
    const descriptionOk = checkDescription();
    const numberOk = checkNumber(true);
    if (!descriptionOk || !numberOk) {
      (descriptionOk ? number : description).focus();
      showError(descriptionOk ? e164Error : descriptionMissing);
      return;
    }
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    const label = button.textContent;
    button.textContent = "Placing the call…";
    try {
      // The same two requests as the seed's curl examples: store the context, then place the call with it.
      await post("/api/context", { description: description.value, scenario: scenario.value });
      const placed = await post("/api/call", { to_number: number.value.trim() });
      if (!placed.id) throw new Error("The call was placed but callcheck did not say where to follow it.");
      window.location.assign("/calls/" + encodeURIComponent(placed.id));
    } catch (error) {
      showError(error.message);
      button.disabled = false;
      button.removeAttribute("aria-busy");
      button.textContent = label;
    }
  });
});
