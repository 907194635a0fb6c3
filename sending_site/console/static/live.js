// Live progress on the ER console's job and transfer pages (progressive enhancement: without
// it the page is right when loaded, and reloading shows what changed). Every few seconds it
// asks the element's data-live address; the progress line follows, and when anything else
// changed (data-version) the page reloads. Polls send X-Console-Refresh: they do not keep an
// unattended session alive.
"use strict";

const CHANGED =
  "This transfer changed while you were typing: the page shows the change once you have " +
  "sent or cleared what you typed.";

const live = document.querySelector("[data-live]");
if (live) {
  // A reload would throw away what the nurse is typing (break-glass): while a text field holds
  // anything, the page waits, and says so beside the form in a live region made empty at once
  // (one made and filled together may go unannounced).
  const fields = Array.from(live.querySelectorAll("input:not([type]), input[type=text], textarea"));
  const said = document.createElement("div");
  said.setAttribute("role", "status");
  said.id = "changed";
  if (fields.length > 0 && fields[0].form) {
    fields[0].form.before(said);
  }
  const typing = () => fields.some((field) => field.value !== "");

  const poll = async () => {
    try {
      const response = await fetch(live.dataset.live, {
        headers: { "X-Console-Refresh": "1" },
        credentials: "same-origin",
        cache: "no-store",
      });
      if (response.redirected || !response.ok) {
        return;
      }
      const body = await response.json();
      if (body.version !== live.dataset.version) {
        if (!typing()) {
          window.location.replace(window.location.pathname);
          return;
        }
        if (said.textContent !== CHANGED) {
          said.className = "notice";
          said.textContent = CHANGED;
        }
      }
      for (const [id, value] of [["progress", body.progress], ["retrying", body.retrying]]) {
        const element = document.getElementById(id);
        if (element) {
          element.textContent = value;
        }
      }
      const meter = document.getElementById("meter");
      if (meter) {
        meter.value = body.percent;
      }
    } catch (error) {
      // The agent is restarting or out of reach: try again at the next tick.
    }
  };
  window.setInterval(poll, 2000);
}
