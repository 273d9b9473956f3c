// The monitors pages: create a monitor from a pasted suite (POST /api/monitors), pause / resume it
// (PATCH /api/monitors/{name}) and ask for a run now (POST /api/monitors/{name}/run). Data reaches the DOM only
// through textContent.
"use strict";

async function monitorRequest(method, path, payload) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrfToken() },
      body: payload === undefined ? undefined : JSON.stringify(payload),
      credentials: "same-origin",
    });
  } catch (error) {
    return { status: 0, body: { error: "Could not reach the callcheck server. Is it still running?" } };
  }
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    body = null;
  }
  return { status: response.status, body };
}

function showMonitorError(box, status, body) {
  const message = body && typeof body.error === "string" ? body.error : "Something went wrong (HTTP " + status + ").";
  box.replaceChildren();
  for (const line of message.split("\n")) {
    const p = document.createElement("p");
    p.textContent = line;
    box.append(p);
  }
}

function setUpMonitorForm(form) {
  const errorBox = form.querySelector("#monitor-form-error");
  const button = form.querySelector("#create-monitor");
  form.addEventListener("input", () => errorBox.replaceChildren());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = (id) => form.querySelector(id).value.trim();
    const payload = { suite: form.querySelector("#monitor-suite").value };
    if (!payload.suite.trim()) {
      showMonitorError(errorBox, 400, { error: "Paste a suite (YAML or JSON) first." });
      return;
    }
    if (value("#monitor-name")) payload.name = value("#monitor-name");
    if (value("#monitor-cron")) payload.cron = value("#monitor-cron");
    else payload.every = value("#monitor-every");
    if (value("#monitor-webhook")) payload.alerts = [{ kind: "webhook", target: value("#monitor-webhook") }];
    const after = parseInt(value("#monitor-after") || "1", 10);
    payload.after = Number.isNaN(after) ? value("#monitor-after") : after;
    button.disabled = true;
    const { status, body } = await monitorRequest("POST", "/api/monitors", payload);
    button.disabled = false;
    if (status === 201 && body && body.name) {
      window.location.assign("/monitors/" + encodeURIComponent(body.name));
      return;
    }
    showMonitorError(errorBox, status, body);
  });
}

function setUpMonitorActions(summary) {
  const name = summary.dataset.monitor;
  const errorBox = summary.querySelector("#monitor-action-error");
  const path = "/api/monitors/" + encodeURIComponent(name);
  const wire = (id, method, suffix, payload) => {
    const button = summary.querySelector(id);
    if (!button) return;
    button.addEventListener("click", async () => {
      button.disabled = true;
      const { status, body } = await monitorRequest(method, path + suffix, payload);
      if (status >= 200 && status < 300) {
        window.location.reload();
        return;
      }
      button.disabled = false;
      showMonitorError(errorBox, status, body);
    });
  };
  wire("#pause-monitor", "PATCH", "", { paused: true });
  wire("#resume-monitor", "PATCH", "", { paused: false });
  wire("#run-monitor", "POST", "/run", undefined);
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("monitor-form");
  if (form) setUpMonitorForm(form);
  const summary = document.getElementById("monitor-summary");
  if (summary) setUpMonitorActions(summary);
});
