// Progressive enhancement only: every page works without this file.
// 1. A form is sent once: its submit button is marked busy after the first click.
// 2. After the idle timeout (data-idle-seconds on <body>), the page reloads itself, so that a
//    screen left unattended goes back to the sign-in page instead of showing patient details.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset.sent === "1") {
    event.preventDefault();
    return;
  }
  form.dataset.sent = "1";
  for (const button of form.querySelectorAll("button[type=submit], button:not([type])")) {
    button.setAttribute("aria-busy", "true");
  }
});

// A page shown again from the back-forward cache may be sent again.
window.addEventListener("pageshow", () => {
  for (const form of document.forms) {
    delete form.dataset.sent;
    for (const button of form.querySelectorAll("[aria-busy]")) {
      button.removeAttribute("aria-busy");
    }
  }
});

const idle = Number(document.body.dataset.idleSeconds || 0);
if (idle > 0) {
  // A GET of the same address: the server answers with the sign-in page once the session ended.
  window.setTimeout(() => window.location.replace(window.location.href), (idle + 5) * 1000);
}
