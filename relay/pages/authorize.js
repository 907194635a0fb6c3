// The patient's phone page. The link is /authorize#<token>.<phone key>: the fragment never
// leaves the phone. The token lets this page ask the relay about the transfer and act on it;
// the key opens what the sending hospital sealed for the phone (the summary, the code) and
// seals who authorized. Sealed format (transfer_codes/phone.py): 12-byte nonce || AES-256-GCM,
// additional data "trauma-relay/v1/phone/<purpose>". No innerHTML: text goes in as text, and the
// QR SVG only as an <img> data URL (an image cannot run script).
//
// Every word the page shows is in /pages/authorize.text.json, in English and Spanish. What an
// element says is kept as a message (a key and its values), so switching language re-renders
// every text on the page, dates included, without asking the relay again.
"use strict";

(() => {
  const AAD_PREFIX = "trauma-relay/v1/phone/";
  const REFRESH_MS = 30000;
  const TEXT_URL = "/pages/authorize.text.json";
  const LANGUAGES = ["en", "es"];
  // The reader's explicit choice, for this tab only; never in the URL, which holds the secret.
  const LANGUAGE_KEY = "trauma-relay.phone.language";
  // The link's fragment, for this tab only, once it is cleared from the address bar.
  const LINK_KEY = "trauma-relay.phone.link";
  // When this tab declined or cancelled a transfer: the relay's revoked_at of each, so the page
  // can say "from this phone" after a reload too. Nothing secret: times only.
  const WITHDRAWN_KEY = "trauma-relay.phone.withdrawn-at";
  const STATES = [
    "created",
    "awaiting_authorization",
    "authorized",
    "redeemed",
    "delivered",
    "expired",
    "revoked",
    "locked",
  ];
  const SELF_REFRESHING = ["authorized", "redeemed"];
  const RELATIONSHIPS = [
    "parent",
    "spouse_or_partner",
    "adult_child",
    "legal_guardian",
    "healthcare_proxy",
    "other",
  ];
  // Refusals the page explains in its own words; any other becomes "problem.other".
  const PROBLEMS = [
    "offline",
    "not-found",
    "csrf",
    "expired",
    "revoked",
    "already-redeemed",
    "invalid-state",
  ];
  // The form's fields by what they ask, for aria-invalid and aria-describedby.
  const FIELDS = {
    role: ["role-patient", "role-family"],
    relationship: ["relationship"],
    name: ["name"],
    consent: ["consent"],
  };

  const $ = (id) => document.getElementById(id);
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  const encoder = new TextEncoder();
  const said = new WeakMap(); // element -> the message it shows
  let text = null;
  let language = "en";
  let token = "";
  let key = null;
  let current = null;
  let timer = null;

  // -- words -----------------------------------------------------------------------------------
  // A message is plain text (names from the relay or the summary), a number, a date
  // ({moment: seconds since 1970} or {day: "YYYY-MM-DD"}), a list of messages, or a dictionary
  // entry {key, values}, whose "{name}" placeholders are filled with further messages.

  function primary(tag) {
    return String(tag).toLowerCase().split("-")[0];
  }

  function preferredLanguage() {
    let chosen = null;
    try {
      chosen = window.sessionStorage.getItem(LANGUAGE_KEY);
    } catch (e) {
      chosen = null; // storage blocked: follow the phone's languages
    }
    if (LANGUAGES.includes(chosen)) return chosen;
    const spoken = (navigator.languages || [navigator.language]).map(primary);
    return spoken.find((tag) => LANGUAGES.includes(tag)) || "en";
  }

  function locale() {
    // The phone's own variant (es-MX, en-GB) when it is set to the language shown.
    const own = (navigator.languages || []).find((tag) => primary(tag) === language);
    return own || language;
  }

  function entry(name) {
    const found = text[language][name];
    return found === undefined ? text.en[name] : found;
  }

  // The page's one date formatter: the phone's locale for the language shown. A moment shows
  // its time and time zone (the phone's own); a calendar day (the study date) has no zone.
  const DAY = { year: "numeric", month: "long", day: "numeric" };
  const MOMENT = { ...DAY, hour: "numeric", minute: "2-digit", timeZoneName: "short" };

  function dateNode(value) {
    const isMoment = value.moment !== undefined;
    const parts = isMoment ? null : /^(\d{4})-(\d{2})-(\d{2})$/.exec(value.day);
    let date = null;
    if (isMoment && value.moment !== null) date = new Date(value.moment * 1000);
    if (parts) date = new Date(Date.UTC(+parts[1], +parts[2] - 1, +parts[3]));
    if (!date || Number.isNaN(date.getTime())) {
      return document.createTextNode(isMoment ? "" : String(value.day)); // a date as found
    }
    const time = document.createElement("time");
    time.dateTime = isMoment ? date.toISOString() : value.day;
    time.textContent = new Intl.DateTimeFormat(
      locale(),
      isMoment ? MOMENT : { ...DAY, timeZone: "UTC" },
    ).format(date);
    return time;
  }

  function node(message) {
    if (Array.isArray(message)) {
      const all = document.createDocumentFragment();
      message.forEach((part) => all.appendChild(node(part)));
      return all;
    }
    if (typeof message === "number") {
      return document.createTextNode(new Intl.NumberFormat(locale()).format(message));
    }
    if (message && typeof message === "object") {
      if (message.moment !== undefined || message.day !== undefined) return dateNode(message);
      return filled(message.key, message.values || {});
    }
    return document.createTextNode(String(message));
  }

  function filled(name, values) {
    let template = entry(name);
    if (template && typeof template === "object") {
      template = template[new Intl.PluralRules(locale()).select(values.n)] || template.other;
    }
    const out = document.createDocumentFragment();
    String(template)
      .split(/\{(\w+)\}/)
      .forEach((part, i) => {
        if (i % 2 === 1) out.appendChild(node(values[part]));
        else if (part) out.appendChild(document.createTextNode(part));
      });
    return out;
  }

  function translate(element) {
    const message = said.has(element) ? said.get(element) : { key: element.dataset.i18n };
    const content = node(message);
    const attribute = element.dataset.i18nAttr;
    if (attribute) element.setAttribute(attribute, content.textContent);
    else element.replaceChildren(content);
  }

  // Show a message in an element (by id or the element itself) and keep it for a re-render.
  function say(target, message) {
    const element = typeof target === "string" ? $(target) : target;
    element.dataset.i18n = (message && message.key) || "";
    said.set(element, message);
    translate(element);
  }

  function translatePage() {
    document.documentElement.lang = language;
    document.querySelectorAll("[data-i18n]").forEach(translate);
    $("language").lang = entry("language.other");
  }

  function chooseLanguage(next) {
    language = next;
    try {
      window.sessionStorage.setItem(LANGUAGE_KEY, next);
    } catch (e) {
      // storage blocked: the choice holds until the page is reloaded
    }
    translatePage();
  }

  // -- what this tab did ---------------------------------------------------------------------

  function withdrawnHere() {
    try {
      const times = JSON.parse(window.sessionStorage.getItem(WITHDRAWN_KEY) || "[]");
      return Array.isArray(times) ? times : [];
    } catch (e) {
      return []; // storage blocked or damaged: the page knows only what it sees now
    }
  }

  let withdrawnNow = []; // as above, for when storage is blocked

  function rememberWithdrawn(status) {
    if (!status.revoked_at) return;
    withdrawnNow = withdrawnNow.concat([status.revoked_at]);
    try {
      const times = withdrawnHere().concat([status.revoked_at]).slice(-20);
      window.sessionStorage.setItem(WITHDRAWN_KEY, JSON.stringify(times));
    } catch (e) {
      // storage blocked: "from this phone" holds until the page is reloaded
    }
  }

  function wasWithdrawnHere(status) {
    const at = status.revoked_at;
    return Boolean(at) && (withdrawnNow.includes(at) || withdrawnHere().includes(at));
  }

  // -- helpers ---------------------------------------------------------------------------------

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  function base64ToBytes(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  function base64UrlToBytes(text) {
    let b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    return base64ToBytes(b64);
  }

  function bytesToBase64(bytes) {
    let binary = "";
    for (let i = 0; i < bytes.length; i += 1) binary += String.fromCharCode(bytes[i]);
    return btoa(binary);
  }

  async function openSealed(purpose, b64) {
    const data = base64ToBytes(b64);
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: data.slice(0, 12), additionalData: encoder.encode(AAD_PREFIX + purpose) },
      key,
      data.slice(12),
    );
    return JSON.parse(new TextDecoder().decode(plain));
  }

  async function seal(purpose, value) {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const sealed = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: encoder.encode(AAD_PREFIX + purpose) },
      key,
      encoder.encode(JSON.stringify(value)),
    );
    const out = new Uint8Array(12 + sealed.byteLength);
    out.set(iv, 0);
    out.set(new Uint8Array(sealed), 12);
    return bytesToBase64(out);
  }

  class Refusal extends Error {
    constructor(code, status, retryAfter) {
      super(code);
      this.code = code;
      this.status = status;
      this.retryAfter = retryAfter; // seconds, when the relay said (a throttle)
    }
  }

  // What the page says about a failed request, in its own words.
  function refusal(error) {
    if (error instanceof Refusal && error.code === "throttled") {
      const minutes = Math.max(1, Math.ceil((Number(error.retryAfter) || 60) / 60));
      if (minutes === 1) return { key: "problem.throttled_minute" };
      return { key: "problem.throttled", values: { minutes: String(minutes) } };
    }
    const known = error instanceof Refusal && PROBLEMS.includes(error.code);
    return { key: known ? `problem.${error.code}` : "problem.other" };
  }

  async function post(path, body) {
    let response;
    try {
      response = await fetch(path, {
        method: "POST",
        credentials: "same-origin",
        cache: "no-store",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body),
      });
    } catch (e) {
      throw new Refusal("offline", 0);
    }
    let data = {};
    try {
      data = await response.json();
    } catch (e) {
      data = {};
    }
    if (!response.ok) {
      const code = String(data.type || "").split(":").pop();
      throw new Refusal(code, response.status, data.retry_after);
    }
    return data;
  }

  function problem(message) {
    show("loading", false);
    say("problem-text", message);
    show("problem", true);
  }

  // -- rendering -----------------------------------------------------------------------------

  function patientHint(summary) {
    const initials = summary && summary.patient_initials;
    const year = summary && summary.patient_birth_year;
    if (initials && year) {
      return { key: "patient.hint", values: { initials: String(initials), year: String(year) } };
    }
    if (initials) return String(initials);
    if (year) return { key: "patient.born", values: { year: String(year) } };
    return null;
  }

  function regionList(summary) {
    const found = (summary && Array.isArray(summary.body_regions) && summary.body_regions) || [];
    const words = [];
    found.forEach((region, i) => {
      if (i) words.push(", ");
      // A region the dictionary knows (transfer_codes.phone.BODY_REGIONS) is worded in the
      // language shown; another (a Body Part Examined term) is shown as found.
      const known = text.en[`region.${region}`] !== undefined;
      words.push(known ? { key: `region.${region}` } : String(region));
    });
    return words;
  }

  function showFact(id, message) {
    // A fact of the summary that older summaries lack: its line shows only when there is one.
    const present = Array.isArray(message) ? message.length > 0 : Boolean(message);
    say(id, present ? message : "");
    show(id, present);
    show(`${id}-label`, present);
  }

  function renderSummary(status, summary) {
    const sender = status.sender.display_name;
    const recipient = status.recipient.display_name;
    showFact("s-patient", patientHint(summary));
    showFact("s-regions", regionList(summary));
    say("s-sender", sender);
    say("s-recipient", recipient);
    // Until when the scans can be taken: not said once they were, or can no longer be (the
    // relay deletes a delivered transfer's data sooner than that).
    const open =
      ["awaiting_authorization", "authorized"].includes(status.state) ||
      (status.state === "redeemed" && !status.discarded_at);
    showFact("s-expires", open && status.expires_at ? { moment: status.expires_at } : "");
    if (summary) {
      const what = summary.study_descriptions.filter(Boolean).join("; ");
      const kinds = summary.modalities.length ? ` (${summary.modalities.join(", ")})` : "";
      const study = [what || { key: "study.unnamed" }, kinds];
      say(
        "s-study",
        summary.study_date
          ? { key: "study.dated", values: { study, date: { day: summary.study_date } } }
          : study,
      );
      say("s-counts", {
        key: "count.both",
        values: {
          images: { key: "count.images", values: { n: summary.image_count } },
          series: { key: "count.series", values: { n: summary.series_count } },
        },
      });
    } else {
      say("s-study", { key: "study.unreadable" });
      say("s-counts", "");
    }
    say("consent-text", { key: "form.consent", values: { sender, recipient } });
    say("decline-question", { key: "decline.question", values: { recipient } });
  }

  function authorizedBy(status, who) {
    if (status.break_glass) return { key: "who.break_glass" };
    if (who && who.name) {
      if (who.role !== "family") return { key: "who.patient_named", values: { name: who.name } };
      const kind = RELATIONSHIPS.includes(who.relationship) ? who.relationship : "other";
      return {
        key: "who.family_named",
        values: { name: who.name, relation: { key: `relation.${kind}` } },
      };
    }
    return { key: status.authorized_by === "family" ? "who.family" : "who.patient" };
  }

  // Who ended the transfer, in the timeline's words: this phone, the patient or family (on
  // another phone, or this one in an earlier visit), or the emergency department.
  function withdrawal(status) {
    const verb = status.declined ? "declined" : "cancelled";
    if (wasWithdrawnHere(status)) return `timeline.${verb}_here`;
    if (status.revoked_by === "sending_site") return "timeline.cancelled_sender";
    if (status.revoked_by === "patient") return `timeline.${verb}_patient`;
    if (status.revoked_by === "family") return `timeline.${verb}_family`;
    return "timeline.cancelled"; // revoked before the relay recorded who
  }

  // Whether news can still come by itself: a transfer the trauma center set aside is over.
  function refreshesItself(status) {
    return SELF_REFRESHING.includes(status.state) && !status.discarded_at;
  }

  // What the state says: a revocation in the words of who made it.
  function stateMessage(status) {
    const state = status.state;
    const recipient = status.recipient.display_name;
    if (state === "revoked" && status.declined) {
      return { key: "state.declined", values: { recipient } };
    }
    if (state === "revoked" && status.revoked_by === "sending_site") {
      return { key: "state.revoked_by_sender" };
    }
    if (state === "redeemed" && status.discarded_at) {
      return { key: "state.discarded" };
    }
    // A state this page does not know yet keeps the relay's own (English) words.
    return STATES.includes(state) ? { key: `state.${state}` } : status.explanation;
  }

  function renderTimeline(status, who) {
    const list = $("timeline");
    list.replaceChildren();
    const add = (key, values, done) => {
      const item = document.createElement("li");
      item.className = done ? "done" : "waiting";
      list.appendChild(item);
      say(item, { key, values });
    };
    const recipient = status.recipient.display_name;
    if (status.authorized_at) {
      add(
        "timeline.authorized",
        { who: authorizedBy(status, who), when: { moment: status.authorized_at } },
        true,
      );
    }
    if (status.redeemed_at) {
      const by = status.redeemed_by;
      add("timeline.taken", { recipient: by, when: { moment: status.redeemed_at } }, true);
    } else if (status.state === "authorized") {
      add("timeline.waiting", { recipient }, false);
    }
    if (status.delivered_at) {
      const delivered = status.delivered || {};
      const values = {
        place: { key: delivered.destination === "pacs" ? "place.pacs" : "place.folder" },
        when: { moment: status.delivered_at },
        images: { key: "count.images", values: { n: delivered.instances } },
      };
      add(delivered.instances ? "timeline.delivered_count" : "timeline.delivered", values, true);
    } else if (status.state === "redeemed" && status.discarded_at) {
      add("timeline.discarded", { when: { moment: status.discarded_at } }, true);
    } else if (status.state === "redeemed") {
      add("timeline.checking", {}, false);
    }
    if (status.revoked_at) {
      const values = { when: { moment: status.revoked_at }, sender: status.sender.display_name };
      add(withdrawal(status), values, true);
    }
    list.hidden = list.children.length === 0;
  }

  function renderCode(code) {
    // Groups of four, two groups to a pair: pairs sit side by side when they fit, then stack,
    // then each pair wraps too, so the code never overflows a narrow or zoomed screen.
    const holder = $("code-text");
    holder.replaceChildren();
    const groups = String(code.code).split("-");
    for (let i = 0; i < groups.length; i += 2) {
      const pair = document.createElement("span");
      pair.className = "pair";
      groups.slice(i, i + 2).forEach((group) => {
        const span = document.createElement("span");
        span.className = "group";
        span.textContent = group;
        pair.appendChild(span);
      });
      holder.appendChild(pair);
    }
    const symbols = groups.map((g) => g.split("").join(" ")).join(", ");
    say("code-spoken", { key: "code.spoken", values: { symbols } });
    const svg = String(code.qr_svg);
    if (/^\s*(<\?xml[^>]*>\s*)?<svg[\s>]/.test(svg)) {
      $("qr").src = `data:image/svg+xml;base64,${bytesToBase64(encoder.encode(svg))}`;
    }
  }

  async function render(status) {
    current = status;
    show("loading", false);
    show("problem", false);
    let summary = null;
    let code = null;
    let who = null;
    try {
      if (status.summary) summary = await openSealed("summary", status.summary);
      if (status.code) code = await openSealed("code", status.code);
      if (status.authorizer) who = await openSealed("authorizer", status.authorizer);
    } catch (e) {
      problem({ key: "problem.link_mismatch" });
      return;
    }
    const state = status.state;
    const waiting = state === "awaiting_authorization";
    const ended = ["expired", "revoked", "locked"].includes(state);
    const selfRefreshing = refreshesItself(status);
    show("break-glass", Boolean(status.break_glass || (summary && summary.break_glass)));
    // Once someone has said no, the reasons for sharing are no longer the page's business.
    show("why", state !== "revoked");
    renderSummary(status, summary);
    show("summary", !ended || state === "locked");
    say("state-text", stateMessage(status));
    renderTimeline(status, who);
    show("state", true);
    show("authorize", waiting);
    show("next", state === "authorized");
    show("code", Boolean(code) && state === "authorized");
    if (code) renderCode(code);
    const revocable = Boolean(status.can_revoke) && state === "authorized";
    show("revoke", revocable);
    // The page refreshing itself leaves open a question the reader is still answering.
    if (!revocable || $("revoke-confirm").hidden) {
      show("revoke-confirm", false);
      show("revoke-button", true);
    }
    // After break-glass nobody agreed on a phone, so cancelling asks who is cancelling.
    show("revoke-who", status.authorized_by === "break_glass");
    show("decline-confirm", false);
    show("decline-button", true);
    // While the page refreshes itself, a button to do it by hand only adds doubt.
    show("refresh", !selfRefreshing);
    show("auto-refresh", selfRefreshing);
    say("page-title", { key: state === "authorized" ? "page.title_code" : "page.title" });
  }

  // Refusals that asking again cannot change: the link leads nowhere, or the page is stale.
  const FINAL = ["not-found", "csrf"];

  async function refresh() {
    try {
      await render(await post("/api/v1/phone/status", { token }));
    } catch (e) {
      problem(refusal(e));
      // "Try again" needs a way to: before the first status, nothing else offers one.
      if (!current && !FINAL.includes(e.code)) show("refresh", true);
    }
  }

  // -- actions -------------------------------------------------------------------------------

  function chosenRole() {
    const checked = document.querySelector('input[name="role"]:checked');
    return checked ? checked.value : "";
  }

  // Marks the field that needs attention (or none) as invalid, described by the error text;
  // every other field is marked valid again.
  function markInvalid(invalid) {
    Object.entries(FIELDS).forEach(([field, ids]) => {
      ids.forEach((id) => {
        if (field === invalid) {
          $(id).setAttribute("aria-invalid", "true");
          $(id).setAttribute("aria-describedby", "form-error");
        } else {
          $(id).removeAttribute("aria-invalid");
          $(id).removeAttribute("aria-describedby");
        }
      });
    });
  }

  function formError(message, invalid) {
    say("form-error", message);
    show("form-error", true);
    markInvalid(invalid);
    if (invalid) $(FIELDS[invalid][0]).focus();
  }

  function invalidField(role, relationship, name) {
    if (!role) return "role";
    if (role === "family" && !relationship) return "relationship";
    if (!name) return "name";
    if (!$("consent").checked) return "consent";
    return null;
  }

  async function authorize(event) {
    event.preventDefault();
    const role = chosenRole();
    const relationship = $("relationship").value;
    const name = $("name").value.trim();
    const invalid = invalidField(role, relationship, name);
    if (invalid) {
      formError({ key: `error.${invalid}` }, invalid);
      return;
    }
    show("form-error", false);
    markInvalid(null);
    const button = $("authorize-button");
    button.disabled = true;
    try {
      const sealed = await seal("authorizer", {
        role,
        name,
        relationship: role === "family" ? relationship : null,
        consented_at: new Date().toISOString(),
      });
      await post("/api/v1/authorizations", {
        token,
        authorizer_role: role,
        sealed_authorizer: sealed,
      });
      await refresh();
      if (current.state === "awaiting_authorization") {
        // Recorded, but the new state could not be read (the connection dropped): say so,
        // rather than leave the form under "Nothing has been shared yet".
        show("authorize", false);
        say("state-text", { key: "state.authorized_unseen" });
        show("refresh", true);
        $("state-heading").focus();
      } else {
        $("next-heading").focus();
      }
    } catch (e) {
      // Ended meanwhile (cancelled by the emergency department, expired): the page shows where
      // things stand, in the words of who ended it, not a form that can no longer be sent.
      if (e.status >= 400 && e.code !== "csrf") await refresh();
      if (current && current.state === "awaiting_authorization") formError(refusal(e), null);
      else $("state-heading").focus();
    } finally {
      button.disabled = false;
    }
  }

  function revokeRoleError(message) {
    const radios = ["revoke-role-patient", "revoke-role-family"];
    radios.forEach((id) => {
      if (message) {
        $(id).setAttribute("aria-invalid", "true");
        $(id).setAttribute("aria-describedby", "revoke-result");
      } else {
        $(id).removeAttribute("aria-invalid");
        $(id).removeAttribute("aria-describedby");
      }
    });
    if (!message) return;
    say("revoke-result", message);
    show("revoke-result", true);
    $(radios[0]).focus();
  }

  async function revoke() {
    const body = { token };
    if (!$("revoke-who").hidden) {
      const checked = document.querySelector('input[name="revoke-role"]:checked');
      if (!checked) {
        revokeRoleError({ key: "error.revoke_role" });
        return;
      }
      body.role = checked.value;
    }
    revokeRoleError(null);
    const button = $("revoke-yes");
    button.disabled = true;
    try {
      const status = await post("/api/v1/phone/revoke", body);
      rememberWithdrawn(status);
      await render(status);
      $("state-heading").focus();
    } catch (e) {
      // Not cancelled: "Cancel this transfer" comes back, to try again (offline, say).
      show("revoke-confirm", false);
      show("revoke-button", true);
      $("revoke-button").focus();
      say("revoke-result", refusal(e));
      show("revoke-result", true);
      if (e.code === "already-redeemed") {
        await refresh();
        say("state-text", refusal(e));
      }
    } finally {
      button.disabled = false;
    }
  }

  function askToDecline() {
    // Who says no is recorded, as for agreeing: the "I am" answer at the top of the form.
    if (!chosenRole()) {
      formError({ key: "error.decline_role" }, "role");
      return;
    }
    show("form-error", false);
    markInvalid(null);
    show("decline-button", false);
    show("decline-confirm", true);
    $("decline-question").focus();
  }

  function keepDeciding() {
    show("decline-confirm", false);
    show("decline-button", true);
    $("decline-button").focus();
  }

  async function decline() {
    const button = $("decline-yes");
    button.disabled = true;
    try {
      const status = await post("/api/v1/phone/decline", { token, role: chosenRole() });
      rememberWithdrawn(status);
      await render(status);
      $("state-heading").focus();
    } catch (e) {
      show("decline-confirm", false);
      show("decline-button", true);
      // Agreed meanwhile (on another phone, or by a doctor): it can still be cancelled.
      const message =
        e.code === "invalid-state" ? { key: "problem.decline_authorized" } : refusal(e);
      if (e.status >= 400 && e.code !== "csrf") await refresh();
      if (current && current.state === "awaiting_authorization") formError(message, null);
      else say("state-text", message);
    } finally {
      button.disabled = false;
    }
  }

  // -- start -----------------------------------------------------------------------------------

  async function loadText() {
    try {
      const response = await fetch(TEXT_URL, { credentials: "same-origin" });
      if (response.ok) return await response.json();
    } catch (e) {
      // said below, in both languages, since neither could be loaded
    }
    $("loading").textContent =
      "The page could not load. Reload it. / La página no se pudo cargar. Vuelva a cargarla.";
    return null;
  }

  // The link's secret (token and phone key). Once read it leaves the address bar and the
  // history, where anyone picking up the phone or its browser history would find it; this tab
  // keeps it (sessionStorage, gone with the tab) so that reloading still works.
  // With storage blocked (a private mode, "block all site data"), this load still works; a
  // reload then finds no link and asks for it again, rather than the page staying "Loading…".
  function linkSecret() {
    const fragment = window.location.hash.replace(/^#/, "");
    if (fragment) {
      try {
        window.sessionStorage.setItem(LINK_KEY, fragment);
      } catch (e) {
        // storage blocked: see above
      }
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
      return fragment;
    }
    try {
      return window.sessionStorage.getItem(LINK_KEY) || "";
    } catch (e) {
      return "";
    }
  }

  async function start() {
    text = await loadText();
    if (!text) return;
    language = preferredLanguage();
    translatePage();
    show("language", true);
    $("language").addEventListener("click", () => chooseLanguage(entry("language.other")));

    const fragment = linkSecret();
    const dot = fragment.indexOf(".");
    if (dot < 1) {
      problem({ key: "problem.link_incomplete" });
      return;
    }
    if (!window.crypto || !window.crypto.subtle) {
      problem({ key: "problem.needs_https" });
      return;
    }
    token = fragment.slice(0, dot);
    try {
      key = await crypto.subtle.importKey(
        "raw",
        base64UrlToBytes(fragment.slice(dot + 1)),
        "AES-GCM",
        false,
        ["encrypt", "decrypt"],
      );
    } catch (e) {
      problem({ key: "problem.link_damaged" });
      return;
    }
    $("authorize").addEventListener("submit", authorize);
    document.querySelectorAll('input[name="role"]').forEach((input) => {
      input.addEventListener("change", () => show("family-fields", chosenRole() === "family"));
    });
    $("revoke-button").addEventListener("click", () => {
      show("revoke-button", false);
      show("revoke-result", false);
      show("revoke-confirm", true);
      $("revoke-no").focus();
    });
    $("revoke-no").addEventListener("click", () => {
      show("revoke-confirm", false);
      show("revoke-button", true);
      $("revoke-button").focus(); // where the reader was, as "No, go back" does for declining
    });
    $("revoke-yes").addEventListener("click", revoke);
    $("decline-button").addEventListener("click", askToDecline);
    $("decline-no").addEventListener("click", keepDeciding);
    $("decline-yes").addEventListener("click", decline);
    $("refresh").addEventListener("click", refresh);
    await refresh();
    timer = window.setInterval(() => {
      if (
        document.visibilityState === "visible" &&
        current &&
        refreshesItself(current)
      ) {
        refresh();
      }
    }, REFRESH_MS);
  }

  document.addEventListener("DOMContentLoaded", start);
  window.addEventListener("hashchange", () => window.location.reload());
  window.addEventListener("pagehide", () => timer && window.clearInterval(timer));
})();
