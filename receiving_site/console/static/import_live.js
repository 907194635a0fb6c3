// Live progress on an import's page: while something is happening (data-poll="1"), the page is
// fetched again every two seconds and its live parts ([data-live]) updated, so typed input
// elsewhere stays. The request says it is a refresh (X-Console-Refresh), which does not keep
// an unattended session alive. When the import moves to another step, the page reloads, and
// then puts focus on the new step's result (a panel with tabindex=-1, if it has one), so that
// a screen reader reads it; only after a reload of its own, not when a person opens the page.
"use strict";

(() => {
  const root = document.getElementById("import");
  if (!root) return;
  const EVERY = 2000;
  const NEW_STAGE = "importReloadedForNewStage"; // in history.state: this page reloaded itself

  // `old` made like `next` (from the fetched page), keeping every element that is the same
  // one in both (same tag and id): a live region (role=status) stays the element a screen
  // reader already knows, so the change of its text is announced; a new one would not be.
  function update(old, next) {
    const same = old.nodeType === next.nodeType && old.nodeName === next.nodeName
      && (old.id || "") === (next.id || "");
    if (!same) {
      old.replaceWith(document.importNode(next, true));
      return;
    }
    if (old.nodeType === Node.TEXT_NODE) {
      if (old.data !== next.data) old.data = next.data;
      return;
    }
    if (old.nodeType !== Node.ELEMENT_NODE) return;
    for (const { name } of [...old.attributes]) {
      if (!next.hasAttribute(name)) old.removeAttribute(name);
    }
    for (const { name, value } of [...next.attributes]) {
      if (old.getAttribute(name) !== value) old.setAttribute(name, value);
    }
    const before = [...old.childNodes];
    const after = [...next.childNodes];
    after.forEach((child, i) => {
      if (i < before.length) update(before[i], child);
      else old.appendChild(document.importNode(child, true));
    });
    for (const extra of before.slice(after.length)) extra.remove();
  }

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
      // Kept with this history entry across the reload (a person's reload or visit has none).
      window.history.replaceState({ [NEW_STAGE]: true }, "");
      window.location.reload();
      return;
    }
    for (const part of document.querySelectorAll("[data-live]")) {
      const next = page.getElementById(part.id);
      if (next && next.innerHTML !== part.innerHTML) update(part, next);
    }
    if (fresh.dataset.poll === "1") window.setTimeout(refresh, EVERY);
  }

  if (window.history.state && window.history.state[NEW_STAGE]) {
    window.history.replaceState(null, "");
    const result = document.querySelector("#status [tabindex='-1']");
    if (result) result.focus();
  }
  if (root.dataset.poll === "1") window.setTimeout(refresh, EVERY);
})();
