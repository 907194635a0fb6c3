// Live progress on the ER console's job and transfer pages (progressive enhancement: without
// it the page is right when loaded, and reloading shows what changed). Every few seconds it
// asks the element's data-live address; the progress line follows, and when anything else
// changed (data-version) the page reloads. Polls send X-Console-Refresh: they do not keep an
// unattended session alive.
"use strict";

const CHANGED =
  "This transfer changed while you were typing: the page shows the change once you have " +
  "sent or cleared what you typed.";

// A reload keeps the keyboard's place: the control that had the focus has it again, found by
// its id, else by its tag and words (never what was typed), if the reloaded page still shows it.
const PLACE = "er-live-focus";
const words = (element) => element.textContent.trim();

const keepPlace = () => {
  const focused = document.activeElement || document.body;
  const place = { path: window.location.pathname, id: focused.id, tag: focused.tagName };
  sessionStorage.setItem(PLACE, JSON.stringify({ ...place, words: words(focused) }));
};

const placeKept = () => {
  const kept = sessionStorage.getItem(PLACE);
  sessionStorage.removeItem(PLACE);
  const place = kept ? JSON.parse(kept) : null;
  if (!place || place.path !== window.location.pathname) {
    return;
  }
  const again =
    (place.id && document.getElementById(place.id)) ||
    Array.from(document.querySelectorAll(place.tag)).find((e) => words(e) === place.words);
  if (again && again !== document.body) {
    again.focus();
  }
  // A screen reader then says the focused control, not the page: the transfer's state is said
  // in a live region, empty at load and filled a moment later (so that it is announced).
  const state = document.getElementById("state");
  if (state) {
    const said = document.createElement("div");
    said.id = "updated";
    said.className = "visually-hidden";
    said.setAttribute("role", "status");
    document.body.append(said);
    window.setTimeout(() => {
      said.textContent = `The page updated: ${words(state)}`;
    }, 500);
  }
};

const live = document.querySelector("[data-live]");
if (live) {
  placeKept();
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
          keepPlace();
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
