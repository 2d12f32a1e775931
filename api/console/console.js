// Hangar console: live job state. Elements with data-live-job="<job id>"
// follow that job; inside them, elements with data-field="state|attempts|
// progress|error" are kept current. One server-sent-events connection per
// page carries every followed job (browsers allow six per server); the
// server ends it when all have finished. No inline script anywhere (CSP).
"use strict";

const FINISHED = ["succeeded", "cancelled", "dead"];

function show(el, job) {
  for (const field of el.querySelectorAll("[data-field]")) {
    const name = field.dataset.field;
    if (name === "state") field.textContent = job.state;
    else if (name === "attempts") field.textContent = `${job.attempts} of ${job.max_attempts} (${job.deliveries} deliveries)`;
    else if (name === "progress") field.textContent = job.progress ? JSON.stringify(job.progress, null, 2) : "none yet";
    else if (name === "error") field.textContent = job.error || "";
  }
  el.dataset.state = job.state;
  // A job's own page shows its result, times and buttons once it ends.
  if ("reloadOnFinish" in el.dataset && FINISHED.includes(job.state)) window.location.reload();
}

// Times: rendered in UTC by the server; shown here in the viewer's own
// zone, with UTC kept on hover.
function localTimes() {
  const fmt = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  });
  for (const el of document.querySelectorAll("time[datetime]")) {
    const local = fmt.format(new Date(el.getAttribute("datetime")));
    if (el.classList.contains("at")) el.textContent = local;
    else el.title = `${local} (${el.title})`;
  }
}

// The playground: an element with data-stream="<url>" shows a chat job's
// answer token by token as the server relays them. EventSource resumes
// with Last-Event-ID by itself when the server ends a stream early
// ("waiting"); after the final event the server answers 204 and it stops.
function followAnswer(el) {
  const answer = el.querySelector("[data-field=answer]");
  const status = el.querySelector("[data-field=status]");
  const source = new EventSource(el.dataset.stream);
  window.addEventListener("pagehide", () => source.close());
  let tokens = 0;
  source.addEventListener("token", (event) => {
    answer.textContent += JSON.parse(event.data).text;
    status.textContent = "answering…";
    el.dataset.tokens = ++tokens;
  });
  source.addEventListener("retry", () => {
    answer.textContent = "";
    el.dataset.tokens = tokens = 0;
    status.textContent = "the attempt failed; starting over…";
  });
  source.addEventListener("waiting", (event) => {
    status.textContent = `waiting for the model (job ${JSON.parse(event.data).state || "queued"})…`;
  });
  source.addEventListener("result", () => {
    status.textContent = "done";
    el.dataset.done = "true";
    source.close();
  });
  source.addEventListener("error", (event) => {
    if (event.data) {
      const data = JSON.parse(event.data);
      status.textContent = `failed: ${data.error || data.state || "the job did not succeed"}`;
      el.dataset.done = "true";
      source.close();
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes();
  for (const el of document.querySelectorAll("[data-stream]")) followAnswer(el);
  const followed = [...document.querySelectorAll("[data-live-job]")];
  const main = document.querySelector("main[data-events]");
  if (!followed.length || !main) return;
  const ids = [...new Set(followed.map((el) => el.dataset.liveJob))];
  const source = new EventSource(`${main.dataset.events}?jobs=${ids.join(",")}`);
  source.addEventListener("job", (event) => {
    const job = JSON.parse(event.data);
    for (const el of followed) if (el.dataset.liveJob === job.id) show(el, job);
  });
  // Leaving the page closes the stream at once: a page kept in the
  // back/forward cache would otherwise hold one of the six connections a
  // browser allows per server.
  window.addEventListener("pagehide", () => source.close());
  // The server closes the stream once every job has finished; do not reconnect then.
  source.onerror = () => {
    if (followed.every((el) => FINISHED.includes(el.dataset.state))) source.close();
  };
});
