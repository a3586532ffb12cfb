// DOM helpers. Every piece of data from the API goes into the page as
// text (textContent), never as markup.

// el makes an element: el("td", {class: "x"}, "text", childNode, ...).
// Attributes named on* are refused: behaviour is attached with
// addEventListener only.
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) throw new Error("el: event attribute " + k);
    if (v === false || v === null || v === undefined) continue;
    e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export const $ = (sel, root) => (root || document).querySelector(sel);
export const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

// button makes a type="button" button that runs fn on activation.
export function button(label, fn, attrs) {
  const b = el("button", Object.assign({ type: "button" }, attrs || {}), label);
  b.addEventListener("click", fn);
  return b;
}

// The domain status words come from the page's legend (rendered by the
// server), so they live in one place.
let statusWords = null;
export function statusWord(status) {
  if (!statusWords) {
    statusWords = {};
    for (const e of $$("#status-legend [data-status]")) statusWords[e.dataset.status] = e.textContent.trim();
  }
  return statusWords[status] || (status ? status[0].toUpperCase() + status.slice(1) : "Unknown");
}

// badge shows a status as a word with a symbol and a colour.
export function badge(kind, word) {
  return el("span", { class: "badge badge-" + kind }, word);
}

export function domainBadge(status) { return badge(status, statusWord(status)); }

// fmtTime shows an API timestamp in the user's locale; "never" for none.
export function fmtTime(iso, never) {
  if (!iso) return never || "never";
  const d = new Date(iso);
  if (isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function timeEl(iso, never) {
  if (!iso) return document.createTextNode(never || "never");
  return el("time", { datetime: iso }, fmtTime(iso));
}

// notice says something briefly in the polite live region.
let noticeTimer = 0;
export function notice(text) {
  const n = $("#notice");
  n.textContent = text;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { n.textContent = ""; }, 6000);
}

// copyText puts text on the clipboard (with a fallback for pages that are
// not a secure context) and says so.
export async function copyText(text, what) {
  let ok = false;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      ok = true;
    }
  } catch (e) { ok = false; }
  if (!ok) {
    const ta = el("textarea", { class: "sr-only", "aria-hidden": "true", tabindex: "-1" });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    ta.remove();
  }
  notice(ok ? "Copied " + what + "." : "Could not copy: select the text and copy it by hand.");
  return ok;
}

// copyButton is a Copy button for text; describedBy names the element the
// text is shown in, so assistive technology says what is copied.
export function copyButton(text, what, describedBy) {
  return button("Copy", () => copyText(text, what), { class: "copy small", "aria-describedby": describedBy });
}

// clearErrors hides every error message of a form.
export function clearErrors(form) {
  for (const e of $$("[data-error-for]", form)) { e.hidden = true; e.textContent = ""; }
  for (const i of $$("[aria-invalid]", form)) i.removeAttribute("aria-invalid");
}

// showError puts an API error next to the field its `field` member names
// (dmarc.pct, accounts[2] -> accounts), or at the form's general message;
// the field is marked invalid and focused. Returns the field, if any.
export function showError(form, err) {
  clearErrors(form);
  const field = (err.field || "").replace(/\[\d+\]$/, "");
  let box = field ? form.querySelector(`[data-error-for="${CSS.escape(field)}"]`) : null;
  if (!box) box = form.querySelector('[data-error-for=""]');
  if (!box) return null;
  box.textContent = err.message;
  box.hidden = false;
  const input = field ? form.querySelector(`[data-field="${CSS.escape(field)}"]`) : null;
  if (input) {
    input.setAttribute("aria-invalid", "true");
    const details = input.closest("details");
    if (details) details.open = true;
    input.focus();
  }
  return input;
}

// confirmAction asks in a modal dialog; resolves true when confirmed.
export function confirmAction(title, text, okLabel) {
  const d = $("#confirm-dialog");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = okLabel;
  return new Promise((resolve) => {
    const done = (v) => {
      $("#confirm-ok").removeEventListener("click", ok);
      $("#confirm-cancel").removeEventListener("click", cancel);
      d.removeEventListener("cancel", cancel);
      if (d.open) d.close();
      resolve(v);
    };
    const ok = () => done(true);
    const cancel = (e) => { if (e) e.preventDefault(); done(false); };
    $("#confirm-ok").addEventListener("click", ok);
    $("#confirm-cancel").addEventListener("click", cancel);
    d.addEventListener("cancel", cancel);
    d.showModal();
    $("#confirm-cancel").focus();
  });
}

// busy runs fn once at a time for a button: further presses while it runs
// are ignored. The button keeps its focus (a disabled one would lose it).
export async function busy(btn, fn) {
  if (btn.getAttribute("aria-disabled") === "true") return undefined;
  btn.setAttribute("aria-disabled", "true");
  try { return await fn(); } finally { btn.removeAttribute("aria-disabled"); }
}
