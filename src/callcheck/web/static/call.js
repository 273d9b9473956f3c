// The call page stays live: it listens to the call's event stream (SSE) and asks htmx to re-fetch the parts of the
// page an event changed. The HTML of a call is rendered only on the server; this file only moves signals around.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const article = document.getElementById("call");
  if (!article || article.dataset.live !== "true" || !window.EventSource) return;
  const callId = article.dataset.callId;
  const status = document.getElementById("live-status");
  const problem = document.getElementById("stream-problem");
  const refresh = (...parts) => {
    for (const part of parts) window.htmx.trigger(document.body, "cc:" + part);
  };

  // The status line (aria-live) takes the sentence of the timeline the server just rendered.
  const syncStatus = () => {
    const timeline = document.getElementById("timeline");
    if (timeline && timeline.dataset.sentence && status.textContent !== timeline.dataset.sentence) {
      status.textContent = timeline.dataset.sentence;
      status.className = "live-status tone-" + (timeline.dataset.tone || "live");
    }
  };
  document.body.addEventListener("htmx:afterSettle", (event) => {
    // Parts are swapped inside stable slots (so a refresh asked for mid-request is never lost with a replaced
    // element): the settled target is the slot, the timeline is inside it.
    if (event.target.id === "timeline-slot") syncStatus();
  });
  // The transcript part also carries its timeline (swapped out of band, in the same step as the turns).
  document.body.addEventListener("htmx:oobAfterSwap", syncStatus);

  const stream = new EventSource("/api/calls/" + encodeURIComponent(callId) + "/events");
  let ended = false;
  stream.addEventListener("state", () => refresh("state", "result"));
  stream.addEventListener("transcript", () => refresh("transcript", "result"));
  stream.addEventListener("recording", () => refresh("result"));
  // After `end` the page re-fetches every part once more; `data-live` turns "false" only when each of those last
  // fetches has been shown (or has failed), so the page never claims to be final while a part is still on its way.
  // A fetch already in flight at `end` does not count: only one that starts after it can carry the final state.
  const finalParts = new Map();
  const settleFinal = (slot) => {
    if (finalParts.get(slot) !== "fetching") return;
    finalParts.delete(slot);
    if (finalParts.size === 0) article.dataset.live = "false";
  };
  document.body.addEventListener("htmx:beforeRequest", (event) => {
    if (finalParts.get(event.target.id) === "asked") finalParts.set(event.target.id, "fetching");
  });
  document.body.addEventListener("htmx:afterSettle", (event) => settleFinal(event.target.id));
  document.body.addEventListener("htmx:afterRequest", (event) => {
    if (!event.detail.successful) settleFinal(event.detail.elt.id);
  });
  stream.addEventListener("end", () => {
    // The server closes the stream after `end`; closing here too stops EventSource from reconnecting.
    ended = true;
    stream.close();
    article.dataset.live = "ending";
    for (const slot of ["timeline-slot", "transcript-slot", "result-slot"]) finalParts.set(slot, "asked");
    refresh("state", "transcript", "result");
    // A safety net: should a last fetch never start (htmx dropped it), the page still stops calling itself live.
    setTimeout(() => {
      if (finalParts.size) {
        finalParts.clear();
        article.dataset.live = "false";
      }
    }, 10_000);
  });
  stream.addEventListener("open", () => {
    problem.hidden = true;
  });
  stream.addEventListener("error", () => {
    if (ended) return;
    problem.hidden = false;
    problem.textContent =
      stream.readyState === EventSource.CLOSED
        ? "Live updates stopped. Reload the page to see the latest state."
        : "Lost the live connection to callcheck; reconnecting…";
  });
});
