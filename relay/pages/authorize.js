// The patient's phone page. The link is /authorize#<token>.<phone key>: the fragment never
// leaves the phone. The token lets this page ask the relay about the transfer and act on it;
// the key opens what the sending hospital sealed for the phone (the summary, the code) and
// seals who authorized. Sealed format (transfer_codes/phone.py): 12-byte nonce || AES-256-GCM,
// additional data "trauma-relay/v1/phone/<purpose>". No innerHTML: text goes in as text, and the
// QR SVG only as an <img> data URL (an image cannot run script).
"use strict";

(() => {
  const AAD_PREFIX = "trauma-relay/v1/phone/";
  const REFRESH_MS = 30000;
  const RELATIONSHIPS = {
    parent: "parent",
    spouse_or_partner: "spouse or partner",
    adult_child: "adult child",
    legal_guardian: "legal guardian",
    healthcare_proxy: "healthcare proxy",
    other: "family member or representative",
  };

  const $ = (id) => document.getElementById(id);
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  const encoder = new TextEncoder();
  let token = "";
  let key = null;
  let current = null;
  let timer = null;

  // -- helpers -------------------------------------------------------------------------------

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  function setText(id, text) {
    $(id).textContent = text;
  }

  function when(seconds) {
    if (seconds === null || seconds === undefined) return "";
    return new Date(seconds * 1000).toLocaleString([], {
      dateStyle: "medium",
      timeStyle: "short",
    });
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
    constructor(detail, code, status) {
      super(detail);
      this.code = code;
      this.status = status;
    }
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
      throw new Refusal(
        "The relay could not be reached. Check that the phone is online, then try again.",
        "offline",
        0,
      );
    }
    let data = {};
    try {
      data = await response.json();
    } catch (e) {
      data = {};
    }
    if (!response.ok) {
      const code = String(data.type || "").split(":").pop();
      throw new Refusal(data.detail || "The relay refused that. Try again.", code, response.status);
    }
    return data;
  }

  function problem(text) {
    show("loading", false);
    setText("problem-text", text);
    show("problem", true);
  }

  // -- rendering -----------------------------------------------------------------------------

  function renderSummary(status, summary) {
    setText("s-sender", status.sender.display_name);
    setText("s-recipient", status.recipient.display_name);
    setText("s-expires", when(status.expires_at));
    if (summary) {
      const what = summary.study_descriptions.filter(Boolean).join("; ") || "Imaging study";
      const kinds = summary.modalities.length ? ` (${summary.modalities.join(", ")})` : "";
      const date = summary.study_date ? `, taken ${summary.study_date}` : "";
      setText("s-study", what + kinds + date);
      const series = summary.series_count === 1 ? "1 series" : `${summary.series_count} series`;
      const images = summary.image_count === 1 ? "1 image" : `${summary.image_count} images`;
      setText("s-counts", `${images} in ${series}`);
    } else {
      setText("s-study", "The details could not be read on this phone.");
      setText("s-counts", "");
    }
    setText(
      "consent-text",
      `I agree that ${status.sender.display_name} shares these scans with ` +
        `${status.recipient.display_name} for the patient's care.`,
    );
  }

  function authorizedBy(status, who) {
    if (status.break_glass) return "by a doctor in an emergency (break-glass)";
    if (who && who.name) {
      const relation =
        who.role === "family" ? `, ${RELATIONSHIPS[who.relationship] || "family member"}` : ", the patient";
      return `by ${who.name}${relation}`;
    }
    return status.authorized_by === "family" ? "by a family member" : "by the patient";
  }

  function renderTimeline(status, who) {
    const list = $("timeline");
    list.replaceChildren();
    const add = (text, done) => {
      const item = document.createElement("li");
      item.className = done ? "done" : "waiting";
      item.textContent = text;
      list.appendChild(item);
    };
    if (status.authorized_at) {
      add(`Authorized ${authorizedBy(status, who)} on ${when(status.authorized_at)}.`, true);
    }
    if (status.redeemed_at) {
      add(`Taken by ${status.redeemed_by} on ${when(status.redeemed_at)}.`, true);
    } else if (status.state === "authorized") {
      add(`Waiting for ${status.recipient.display_name} to take the images.`, false);
    }
    if (status.delivered_at) {
      const place =
        status.delivered && status.delivered.destination === "pacs"
          ? "their imaging system (PACS)"
          : "their imaging folder";
      const count = status.delivered && status.delivered.instances;
      const images = count ? ` (${count} ${count === 1 ? "image" : "images"})` : "";
      add(`Delivered into ${place} on ${when(status.delivered_at)}${images}.`, true);
    } else if (status.state === "redeemed") {
      add("Being checked and stored at the trauma center.", false);
    }
    if (status.revoked_at) add(`Cancelled on ${when(status.revoked_at)}.`, true);
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
    holder.setAttribute("aria-label", `Code: ${groups.map((g) => g.split("").join(" ")).join(", ")}`);
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
      problem(
        "This link does not fit this transfer (it may be incomplete). Scan the QR code at the " +
          "emergency department again.",
      );
      return;
    }
    const state = status.state;
    const waiting = state === "awaiting_authorization";
    const ended = ["expired", "revoked", "locked"].includes(state);
    show("break-glass", Boolean(status.break_glass || (summary && summary.break_glass)));
    renderSummary(status, summary);
    show("summary", !ended || state === "locked");
    setText("state-text", status.explanation);
    renderTimeline(status, who);
    show("state", true);
    show("authorize", waiting);
    show("code", Boolean(code) && state === "authorized");
    if (code) renderCode(code);
    show("revoke", Boolean(status.can_revoke) && state === "authorized");
    show("revoke-confirm", false);
    show("revoke-button", true);
    show("refresh", true);
    document.title =
      state === "authorized" ? "Code for the trauma center" : "Share scans with the trauma center";
  }

  async function refresh() {
    try {
      await render(await post("/api/v1/phone/status", { token }));
    } catch (e) {
      problem(e.message);
    }
  }

  // -- actions -------------------------------------------------------------------------------

  function chosenRole() {
    const checked = document.querySelector('input[name="role"]:checked');
    return checked ? checked.value : "";
  }

  function formError(text, field) {
    setText("form-error", text);
    show("form-error", true);
    if (field) field.focus();
  }

  async function authorize(event) {
    event.preventDefault();
    show("form-error", false);
    const role = chosenRole();
    const relationship = $("relationship").value;
    const name = $("name").value.trim();
    if (!role) return formError("Choose who is agreeing: the patient or a family member.", $("role-patient"));
    if (role === "family" && !relationship) {
      return formError("Choose how you are related to the patient.", $("relationship"));
    }
    if (!name) return formError("Write your full name.", $("name"));
    if (!$("consent").checked) {
      return formError(
        "Tick the box to agree. If you do not agree, close this page; nothing will be shared.",
        $("consent"),
      );
    }
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
      $("code-heading").focus();
    } catch (e) {
      formError(e.message, null);
    } finally {
      button.disabled = false;
    }
  }

  async function revoke() {
    const button = $("revoke-yes");
    button.disabled = true;
    try {
      await render(await post("/api/v1/phone/revoke", { token }));
    } catch (e) {
      show("revoke-confirm", false);
      setText("revoke-result", e.message);
      show("revoke-result", true);
      if (e.code === "already-redeemed") {
        const message = e.message;
        await refresh();
        setText("state-text", message);
      }
    } finally {
      button.disabled = false;
    }
  }

  // -- start -----------------------------------------------------------------------------------

  async function start() {
    const fragment = window.location.hash.replace(/^#/, "");
    const dot = fragment.indexOf(".");
    if (dot < 1) {
      problem(
        "This link is incomplete. Scan the QR code at the emergency department again, or ask " +
          "the staff for the link.",
      );
      return;
    }
    if (!window.crypto || !window.crypto.subtle) {
      problem("This page needs a secure (https) connection. Ask the emergency department.");
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
      problem("This link is damaged. Scan the QR code at the emergency department again.");
      return;
    }
    $("code-heading").tabIndex = -1;
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
    });
    $("revoke-yes").addEventListener("click", revoke);
    $("refresh").addEventListener("click", refresh);
    await refresh();
    timer = window.setInterval(() => {
      if (
        document.visibilityState === "visible" &&
        current &&
        ["authorized", "redeemed"].includes(current.state)
      ) {
        refresh();
      }
    }, REFRESH_MS);
  }

  document.addEventListener("DOMContentLoaded", start);
  window.addEventListener("hashchange", () => window.location.reload());
  window.addEventListener("pagehide", () => timer && window.clearInterval(timer));
})();
