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
}

document.addEventListener("DOMContentLoaded", () => {
  const followed = [...document.querySelectorAll("[data-live-job]")];
  const main = document.querySelector("main[data-events]");
  if (!followed.length || !main) return;
  const ids = [...new Set(followed.map((el) => el.dataset.liveJob))];
  const source = new EventSource(`${main.dataset.events}?jobs=${ids.join(",")}`);
  source.addEventListener("job", (event) => {
    const job = JSON.parse(event.data);
    for (const el of followed) if (el.dataset.liveJob === job.id) show(el, job);
  });
  // The server closes the stream once every job has finished; do not reconnect then.
  source.onerror = () => {
    if (followed.every((el) => FINISHED.includes(el.dataset.state))) source.close();
  };
});
