// Live progress on the ER console's job and transfer pages (progressive enhancement: without
// it the page is right when loaded, and reloading shows what changed). Every few seconds it
// asks the element's data-live address; the progress line follows, and when anything else
// changed (data-version) the page reloads. Polls send X-Console-Refresh: they do not keep an
// unattended session alive.
"use strict";

const live = document.querySelector("[data-live]");
if (live) {
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
        window.location.replace(window.location.pathname);
        return;
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
