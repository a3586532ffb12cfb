// The Domains views: the list, + Add Domain, and a domain's Preview
// (records, Verify, Access, events, Delete).

import { api, orgPath } from "./api.js";
import {
  $, $$, el, button, badge, domainBadge, statusWord, timeEl, notice, copyText, copyButton,
  clearErrors, showError, confirmAction, busy,
} from "./ui.js";

const purposeText = {
  dkim: "DKIM key",
  return_path: "Bounce domain (Return Path)",
  tracking: "Link tracking",
  dmarc: "DMARC policy",
};

const recordWords = {
  unchecked: "Not checked yet",
  ok: "OK",
  missing: "Missing",
  mismatch: "Wrong value",
  error: "DNS error",
};

const eventWords = {
  "domain.added": "Added",
  "domain.checked": "Checked",
  "domain.verified": "Verified",
  "domain.failing": "Failing",
  "domain.revoked": "Revoked",
  "domain.access": "Access changed",
  "domain.deleted": "Deleted",
  "dkim.next_published": "Next DKIM key published",
  "dkim.rotated": "DKIM key rotated",
  "dkim.retired": "DKIM key retired",
  "dkim.removed": "Retired DKIM key removed",
};

const keyWords = {
  active: "Signing",
  next: "Next: published, signs after the next rotation",
  retired: "Retired: still published",
};

const domainPath = (name, rest) => orgPath("/domains/" + encodeURIComponent(name) + (rest || ""));

// ---- the list ----

export async function showDomainList(app) {
  const body = $("#domain-table tbody");
  const out = await api("GET", orgPath("/domains"));
  body.replaceChildren();
  const domains = (out && out.domains) || [];
  domains.forEach((d, i) => {
    const id = "domain-row-" + i;
    const name = el("th", { scope: "row", id }, d.name);
    if (d.sandbox) name.append(" ", badge("sandbox", "Sandbox"));
    body.append(el("tr", { "data-domain": d.name },
      name,
      el("td", {}, domainBadge(d.status)),
      el("td", {}, timeEl(d.last_checked_at, d.sandbox ? "not needed" : "never")),
      el("td", { class: "actions-cell" },
        button("Preview", () => app.go("domain/" + d.name), { "aria-describedby": id })),
    ));
  });
  if (domains.length <= 1) {
    body.append(el("tr", {}, el("td", { colspan: "4", class: "empty" },
      "Add your own sending domain with + Add Domain: sendergate shows the DNS records to publish, then verifies them.")));
  }
}

// ---- + Add Domain ----

let resetAdd = () => {};

export function setUpAddForm(app) {
  const form = $("#add-form");
  const name = $("#add-name"), rp = $("#add-return-path"), tr = $("#add-tracking");
  const policy = $("#add-dmarc-policy"), rua = $("#add-dmarc-rua"), pct = $("#add-dmarc-pct");
  const rpDefault = $("#return-path-preview").textContent;
  const preview = () => {
    const domain = name.value.trim().toLowerCase().replace(/\.$/, "") || "your-domain";
    $("#return-path-preview").textContent = rp.value.trim() ? rp.value.trim().toLowerCase() + "." + domain : rpDefault;
    $("#tracking-preview").textContent = tr.value.trim() ? tr.value.trim().toLowerCase() + "." + domain : "none";
  };
  const dmarc = () => {
    rua.disabled = policy.value === "";
    pct.disabled = policy.value === "" || policy.value === "none";
  };
  for (const i of [name, rp, tr]) i.addEventListener("input", preview);
  policy.addEventListener("change", dmarc);
  $("#add-cancel").addEventListener("click", () => app.go("domains"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const submit = form.querySelector('button[type="submit"]');
    await busy(submit, async () => {
      clearErrors(form);
      try {
        const d = await api("POST", orgPath("/domains"), addInput());
        notice("Domain " + d.name + " added: publish its records, then press Verify.");
        app.go("domain/" + d.name);
      } catch (err) {
        if (!app.handled(err)) showError(form, err);
      }
    });
  });
  resetAdd = () => {
    form.querySelectorAll("input").forEach((i) => { i.value = i.defaultValue; });
    $("#add-algorithm").value = "rsa-2048";
    policy.value = "";
    $("#advanced").open = false;
    clearErrors(form);
    preview();
    dmarc();
  };
}

// addInput is the Domain input of the form: only what was filled in.
function addInput() {
  const v = (id) => $(id).value.trim();
  const input = { name: v("#add-name") };
  if (v("#add-return-path")) input.return_path = v("#add-return-path");
  if (v("#add-tracking")) input.tracking = v("#add-tracking");
  if (v("#add-selector")) input.dkim_selector = v("#add-selector");
  if (v("#add-algorithm") !== "rsa-2048") input.dkim_algorithm = v("#add-algorithm");
  const policy = v("#add-dmarc-policy");
  if (policy) {
    input.dmarc = { policy };
    if (v("#add-dmarc-rua")) input.dmarc.rua = v("#add-dmarc-rua");
    if (policy !== "none" && v("#add-dmarc-pct") !== "") {
      const n = Number(v("#add-dmarc-pct"));
      input.dmarc.pct = Number.isInteger(n) ? n : v("#add-dmarc-pct");
    }
  }
  return input;
}

export function showAddForm() {
  resetAdd();
}

// ---- a domain's Preview ----

export async function showDomain(app, name) {
  const d = await api("GET", domainPath(name));
  await showMore(app, d);
}

// showMore renders d with what the Preview shows besides the domain: its
// events, the organization's accounts (Access) and the zone-file snippet.
async function showMore(app, d) {
  const [events, accounts, zonefile] = await Promise.all([
    api("GET", domainPath(d.name, "/events")),
    api("GET", orgPath("/smtp-accounts")),
    api("GET", domainPath(d.name, "/zonefile"), undefined, { text: true }),
  ]);
  renderDomain(app, d, (events && events.events) || [], (accounts && accounts.accounts) || [], zonefile);
}

function renderDomain(app, d, events, accounts, zonefile) {
  $("#domain-title").textContent = d.name;
  $("#domain-badge").replaceChildren(domainBadge(d.status));
  if (d.sandbox) $("#domain-badge").append(" ", badge("sandbox", "Sandbox"));
  $("#domain-checked").replaceChildren(d.sandbox ? "" : "Last checked: ", d.sandbox ? "" : timeEl(d.last_checked_at));
  $("#domain-advice").textContent = advice(d);
  $("#verify").hidden = !!d.sandbox;
  renderRecords(d);
  renderDKIM(d);
  $("#zonefile-text").textContent = zonefile;
  renderAccess(app, d, accounts);
  renderEvents(events);
  const del = $("#delete-domain");
  del.hidden = !!d.sandbox;
  $("#delete-text").textContent = d.sandbox
    ? "The sandbox domain cannot be deleted; it goes with the organization."
    : "Mail from the domain is refused from then on, its DKIM key is destroyed and its records stop being served.";
  app.current = { domain: d };
}

function advice(d) {
  if (d.sandbox) {
    return "The sandbox domain is verified from the start and needs no DNS records: every SMTP account of the organization may send from it at once, up to a daily number of recipients.";
  }
  switch (d.status) {
    case "pending": return "Publish the records below at the domain's DNS provider, then press Verify. sendergate also re-checks pending domains by itself for a while.";
    case "verified": return "The domain may send. sendergate keeps re-checking its records: leave them published.";
    case "failing": return "A recent check missed a record (see below). Mail is still accepted for a grace period: restore the record, then press Verify.";
    case "revoked": return "Mail from the domain is refused: its records were missing for longer than the grace period. Restore them, then press Verify.";
    default: return "";
  }
}

function renderRecords(d) {
  const body = $("#records-table tbody");
  body.replaceChildren();
  const records = d.records || [];
  $("#records-intro").hidden = records.length === 0;
  $("#zonefile").hidden = records.length === 0;
  $("#copy-zonefile").hidden = records.length === 0;
  if (records.length === 0) {
    body.append(el("tr", {}, el("td", { colspan: "4", class: "empty" },
      d.sandbox ? "None: sendergate serves the sandbox domain itself." : "No records.")));
    return;
  }
  records.forEach((r, i) => {
    const hostId = "record-" + i + "-host", valueId = "record-" + i + "-value";
    const status = el("td", {}, badge(r.status || "unchecked", recordWords[r.status] || r.status));
    if (r.reason) status.append(el("p", { class: "record-reason" }, r.reason));
    if (r.found && r.status !== "ok") status.append(el("p", { class: "record-found" }, "Found: " + r.found));
    if (r.note) status.append(el("p", { class: "record-note" }, "Note: " + r.note));
    body.append(el("tr", { "data-purpose": r.purpose },
      el("td", { class: "host" },
        el("div", { class: "hint" }, purposeText[r.purpose] || r.purpose),
        el("code", { id: hostId }, r.host),
        copyButton(r.host, "the host " + r.host, hostId)),
      el("td", {}, r.type),
      el("td", { class: "value" },
        el("code", { id: valueId }, r.value),
        copyButton(r.value, "the value " + r.value, valueId)),
      status,
    ));
  });
}

// renderDKIM shows the keys by state (the Domain output's dkim) and
// whether a rotation is possible now.
function renderDKIM(d) {
  const k = d.dkim;
  $("#dkim-card").hidden = !!d.sandbox || !k;
  if (d.sandbox || !k) return;
  const body = $("#dkim-table tbody");
  body.replaceChildren();
  const row = (state, key) => {
    const dates = el("td", {}, "Created ", timeEl(key.created_at));
    if (key.activated_at) dates.append(el("br"), "Signing since ", timeEl(key.activated_at));
    if (key.retired_at) dates.append(el("br"), "Retired ", timeEl(key.retired_at));
    if (key.safe_to_remove_at) dates.append(el("br"), "Published until ", timeEl(key.safe_to_remove_at));
    body.append(el("tr", { "data-state": state },
      el("td", {}, badge(state, keyWords[state]), key.byok ? el("p", { class: "record-note" }, "Your own key, published on your DNS") : ""),
      el("td", {}, el("code", {}, key.selector)),
      el("td", {}, key.algorithm),
      dates));
  };
  if (k.active) row("active", k.active);
  if (k.next) row("next", k.next);
  for (const r of k.retired || []) row("retired", r);
  const rot = k.rotation || {};
  const p = $("#dkim-rotation");
  p.replaceChildren();
  switch (rot.status) {
    case "ready":
      p.append("A rotation is possible now.");
      if (rot.automatic_at) p.append(" sendergate rotates on its own at ", timeEl(rot.automatic_at), ".");
      break;
    case "waiting":
      p.append("The retired key still holds the second selector; the next rotation is possible from ", timeEl(rot.possible_at), ".");
      break;
    case "unavailable":
      p.append(rot.reason || "Rotation is not available for this domain.");
      if (rot.record) p.append(" Add this record to enable it: ", el("code", {}, rot.record.host + " CNAME " + rot.record.value));
      break;
    default:
      p.append(rot.reason || "");
  }
  $("#rotate").hidden = rot.status !== "ready" || d.status !== "verified";
}

function renderEvents(events) {
  const list = $("#events");
  list.replaceChildren();
  if (events.length === 0) list.append(el("li", { class: "empty" }, "No events yet."));
  for (const e of events.slice().reverse()) {
    list.append(el("li", {}, timeEl(e.at), el("span", { class: "kind" }, eventWords[e.kind] || e.kind), e.detail || ""));
  }
}

// ---- Access ----

function renderAccess(app, d, accounts) {
  const box = $("#access-body");
  box.replaceChildren();
  if (d.sandbox) {
    box.append(el("p", {}, "Every SMTP account of the organization may send from the sandbox domain; it cannot be restricted to some accounts."));
    return;
  }
  if (accounts.length === 0) {
    box.append(el("p", {}, "This organization has no SMTP accounts yet; every account created will be able to send as " + d.name +
      " until access is restricted. "), button("Create an SMTP account", () => app.go("accounts"), { class: "linkish" }));
    return;
  }
  const granted = new Set(d.access.restricted ? d.access.accounts : []);
  const form = el("form", { id: "access-form", novalidate: true });
  const fs = el("fieldset", {}, el("legend", {}, "SMTP accounts that may send as " + d.name));
  const radio = (value, text, checked) => el("div", { class: "access-choice" },
    el("input", { type: "radio", name: "access-mode", id: "access-" + value, value, checked }),
    el("label", { for: "access-" + value }, text));
  fs.append(radio("all", "All accounts, including ones created later", !d.access.restricted),
    radio("some", "Only the accounts ticked below", d.access.restricted));
  const list = el("ul", { class: "access-list" });
  accounts.forEach((a, i) => {
    const id = "access-account-" + i;
    list.append(el("li", {},
      el("input", { type: "checkbox", id, value: a.name, "data-field": "accounts", checked: granted.has(a.name) }),
      el("label", { for: id }, a.name)));
  });
  fs.append(list, el("p", { class: "error", "data-error-for": "accounts", hidden: true }));
  if (d.status !== "verified" && d.status !== "failing") {
    fs.append(el("p", { class: "hint" }, "Set it now if you like: it applies as soon as the domain is verified, before its first message."));
  }
  const now = el("p", { id: "access-now" }, accessText(d));
  form.append(fs, el("p", { class: "error", "data-error-for": "", hidden: true }),
    el("button", { type: "submit", class: "primary" }, "Save access"), now);
  box.append(form);

  const sync = () => {
    const some = $("#access-some").checked;
    for (const c of $$('input[type="checkbox"]', list)) c.disabled = !some;
  };
  for (const r of $$('input[type="radio"]', fs)) r.addEventListener("change", sync);
  sync();
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    await busy(form.querySelector('button[type="submit"]'), async () => {
      clearErrors(form);
      const restricted = $("#access-some").checked;
      const names = restricted ? $$('input[type="checkbox"]:checked', list).map((c) => c.value) : [];
      try {
        const out = await api("PUT", domainPath(d.name, "/access"), { restricted, accounts: names });
        d.access = out.access;
        now.textContent = accessText(out);
        notice("Access saved. " + accessText(out));
      } catch (err) {
        if (!app.handled(err)) showError(form, err);
      }
    });
  });
}

function accessText(d) {
  if (!d.access.restricted) return "Now: every SMTP account of the organization may send as " + d.name + ".";
  if (d.access.accounts.length === 0) return "Now: no account may send as " + d.name + ".";
  return "Now: only " + d.access.accounts.join(", ") + " may send as " + d.name + ".";
}

// ---- the buttons of the Preview ----

export function setUpDomainView(app) {
  $("#back-domains").addEventListener("click", () => app.go("domains"));
  $("#verify").addEventListener("click", async () => {
    const d = app.current && app.current.domain;
    if (!d) return;
    await busy($("#verify"), async () => {
      notice("Checking the records of " + d.name + "…");
      try {
        const out = await api("POST", domainPath(d.name, "/verify"));
        await showMore(app, out);
        const bad = (out.records || []).filter((r) => r.status !== "ok").length;
        notice(bad === 0
          ? out.name + " is " + statusWord(out.status) + ": all records are right."
          : out.name + " is " + statusWord(out.status) + ": " + bad + " of " + out.records.length + " records are not right yet (see each record's status).");
      } catch (err) {
        app.handled(err) || app.alert(err.message);
      }
    });
  });
  $("#rotate").addEventListener("click", async () => {
    const d = app.current && app.current.domain;
    if (!d) return;
    await busy($("#rotate"), async () => {
      notice("Checking the next selector of " + d.name + ", then switching…");
      try {
        const out = await api("POST", domainPath(d.name, "/dkim/rotate"), {});
        await showMore(app, out);
        notice(out.name + " now signs with selector " + (out.dkim && out.dkim.active ? out.dkim.active.selector : "?") + ".");
      } catch (err) {
        app.handled(err) || app.alert(err.message);
      }
    });
  });
  $("#copy-zonefile").addEventListener("click", () => copyText($("#zonefile-text").textContent, "the records as a zone-file snippet"));
  $("#delete-domain").addEventListener("click", async () => {
    const d = app.current && app.current.domain;
    if (!d) return;
    const yes = await confirmAction("Delete " + d.name + "?",
      "Mail from " + d.name + " will be refused, its DKIM key is destroyed and its records stop being served. Adding it again later gives new records.",
      "Delete " + d.name);
    if (!yes) { $("#delete-domain").focus(); return; }
    try {
      await api("DELETE", domainPath(d.name));
      notice(d.name + " was deleted.");
      app.go("domains");
    } catch (err) {
      app.handled(err) || app.alert(err.message);
    }
  });
}
