// Live progress on an import's page: while something is happening (data-poll="1"), the page is
// fetched again every two seconds and its live parts ([data-live]) replaced, so typed input
// elsewhere stays. The request says it is a refresh (X-Console-Refresh), which does not keep
// an unattended session alive. When the import moves to another step, the page reloads.
"use strict";

(() => {
  const root = document.getElementById("import");
  if (!root) return;
  const EVERY = 2000;

  async function refresh() {
    let text;
    try {
      const answer = await fetch(window.location.pathname, {
        headers: { "X-Console-Refresh": "1" },
        credentials: "same-origin",
        redirect: "manual",
      });
      if (answer.type === "opaqueredirect" || !answer.ok) {
        window.location.reload(); // signed out, or gone: let the server say so
        return;
      }
      text = await answer.text();
    } catch {
      window.setTimeout(refresh, EVERY * 2);
      return;
    }
    const page = new DOMParser().parseFromString(text, "text/html");
    const fresh = page.getElementById("import");
    if (!fresh || fresh.dataset.stage !== root.dataset.stage) {
      window.location.reload();
      return;
    }
    for (const part of document.querySelectorAll("[data-live]")) {
      const next = page.getElementById(part.id);
      if (next && next.innerHTML !== part.innerHTML) part.innerHTML = next.innerHTML;
    }
    if (fresh.dataset.poll === "1") window.setTimeout(refresh, EVERY);
  }

  if (root.dataset.poll === "1") window.setTimeout(refresh, EVERY);
})();
