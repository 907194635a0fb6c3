// The code's check symbol, checked as it is typed (the agent checks it again; this only tells
// sooner). Same rules as transfer_codes/codes.py: Crockford base32, case-insensitive, O -> 0,
// I/L -> 1, spaces and dashes ignored, 16 symbols whose weighted sum over GF(32) is zero.
// A scanned QR (it has a colon) is left to the agent, and so is text too long to be typed (a QR
// whose colons a scanner's keyboard layout garbled: the agent says so). A code with a mistake
// is not sent; it stays selected in the field, so that the next scan or typing replaces it.
"use strict";

(() => {
  const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  const SEPARATORS = /[\s\u00a0\-\u2010-\u2014\u2212]/g;
  const LENGTH = 16;

  function value(symbol) {
    const folded = symbol.toUpperCase().replace("O", "0").replace(/[IL]/, "1");
    return ALPHABET.indexOf(folded);
  }

  function multiply(a, b) {
    let product = 0;
    while (b) {
      if (b & 1) product ^= a;
      b >>= 1;
      a <<= 1;
      if (a & 32) a ^= 0b100101;
    }
    return product;
  }

  // What is wrong with the typed text, or "" when it may be sent.
  function problem(text) {
    if (text.includes(":")) return "";
    const symbols = text.replace(SEPARATORS, "");
    if (symbols.length > 2 * LENGTH) return "";
    for (let i = 0; i < symbols.length; i += 1) {
      if (value(symbols[i]) < 0) {
        return `Character ${i + 1} of the code ("${symbols[i]}") is not used in transfer codes. Check the code and type it again.`;
      }
    }
    if (symbols.length !== LENGTH) {
      return `A transfer code has 16 characters; this has ${symbols.length}. Check that none is missing or doubled.`;
    }
    let sum = 0;
    let weight = 1;
    for (const symbol of symbols) {
      sum ^= multiply(weight, value(symbol));
      weight = multiply(weight, 2);
    }
    return sum === 0 ? "" : "This code has a typing mistake: a character is wrong or two are swapped. Read the code back group by group and type it again. No attempt was used.";
  }

  const form = document.getElementById("code-form");
  const field = document.getElementById("code");
  const shown = document.getElementById("problem");
  if (!form || !field || !shown) return;

  // The sentence shown describes the field, as the agent's own refusal does (the page links
  // it), so that a screen reader reads it with the field; and no longer once it is cleared.
  function show(sentence) {
    shown.textContent = sentence;
    shown.hidden = sentence === "";
    const described = (field.getAttribute("aria-describedby") || "").split(/\s+/)
      .filter((id) => id && id !== shown.id);
    if (sentence) described.push(shown.id);
    if (described.length) field.setAttribute("aria-describedby", described.join(" "));
    else field.removeAttribute("aria-describedby");
    if (sentence) field.setAttribute("aria-invalid", "true");
    else field.removeAttribute("aria-invalid");
  }

  field.addEventListener("input", () => {
    // Told once the whole code is there; while typing, only a character that cannot be one.
    const text = field.value;
    const symbols = text.replace(SEPARATORS, "");
    const sentence = problem(text);
    show(symbols.length >= LENGTH || sentence.startsWith("Character") ? sentence : "");
  });

  form.addEventListener("submit", (event) => {
    const sentence = field.value.trim() === "" ? "Type the code from the transfer sheet, or scan its QR." : problem(field.value);
    if (sentence) {
      event.preventDefault();
      event.stopImmediatePropagation();
      show(sentence);
      field.focus();
      field.select();
    }
  }, true);

  // A code the agent refused comes back in the field, focused, to send again with Enter. Its
  // text is selected, so that the next scan (a scanner types into whatever has focus) or a
  // code typed again replaces it instead of landing in front of it.
  if (!shown.hidden && field.value) {
    field.focus();
    field.select();
  }
})();
