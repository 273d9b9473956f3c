// Shared by every page. Data only ever reaches the DOM through textContent, never innerHTML.
"use strict";

// Show server times (UTC) in the reader's own time zone.
function localizeTimes(root) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(at.getTime())) {
      el.textContent = at.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
      el.title = el.getAttribute("datetime");
    }
  }
}

document.addEventListener("DOMContentLoaded", () => localizeTimes(document));
document.addEventListener("htmx:afterSettle", (event) => localizeTimes(event.target));

// The session's CSRF token (base.html's meta tag): every state-changing fetch of the page sends it as X-CSRF-Token.
function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute("content") : "";
}
