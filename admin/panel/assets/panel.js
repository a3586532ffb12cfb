// The sendergate panel: sign-in, the organization, and the views, routed
// by the URL fragment (#domains, #domain/NAME, #add, #accounts,
// #addresses, #usage). The fragment never holds a key.

import { api, session, handlers, unavailableText } from "./api.js";
import { $, $$, notice, clearErrors, showError } from "./ui.js";
import { showDomainList, setUpAddForm, showAddForm, showDomain, setUpDomainView } from "./domains.js";
import { showAccounts, setUpAccounts, hideSecret } from "./accounts.js";
import { showAddresses, setUpAddresses } from "./addresses.js";
import { showUsage, setUpUsage } from "./usage.js";

const views = ["signin", "orgs", "domains", "add", "domain", "accounts", "addresses", "usage"];
const navOf = { domains: "domains", add: "domains", domain: "domains", accounts: "accounts", addresses: "addresses", usage: "usage" };

const app = {
  current: null,
  // go shows a view: "domains", "add", "domain/NAME", "accounts", ...
  go(where) {
    if (location.hash === "#" + where) route(true);
    else location.hash = where;
  },
  // handled reports whether err was already dealt with globally: a 401
  // (back to sign-in) or the service being unavailable (the banner).
  handled(err) {
    return err.status === 401 || err.status === 0 || (err.status === 503 && err.code !== "delivery_failed");
  },
  alert: showBanner,
};

function showBanner(text) {
  const b = $("#banner");
  b.textContent = text;
  b.hidden = false;
}

function clearBanner() {
  $("#banner").hidden = true;
  $("#banner").textContent = "";
}

handlers.unavailable = () => showBanner(unavailableText);
handlers.available = () => { if ($("#banner").textContent === unavailableText) clearBanner(); };
handlers.unauthorized = () => {
  forget();
  showSignIn("This key was not accepted (it may have been deleted). Sign in again with a valid key.");
};

function show(view, focus) {
  for (const v of views) $("#view-" + v).hidden = v !== view;
  const signedIn = view !== "signin";
  $("#sign-out").hidden = !signedIn;
  const inOrg = signedIn && view !== "orgs";
  $("#nav").hidden = !inOrg;
  $("#who").hidden = !inOrg;
  $("#org-name").textContent = inOrg ? session.org() : "";
  $("#switch-org").hidden = !(inOrg && session.isAdmin());
  for (const b of $$("#nav button")) {
    if (b.dataset.view === navOf[view]) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  if (focus !== false) {
    const h = $("#view-" + view + " h1");
    if (h) h.focus();
  }
}

function showSignIn(message, focus) {
  const form = $("#signin-form");
  clearErrors(form);
  $("#signin-key").value = "";
  show("signin", focus);
  if (message) showError(form, { field: "Authorization", message });
}

// forget drops the key and everything shown with it.
function forget() {
  session.clear();
  hideSecret();
  for (const t of $$("main tbody")) t.replaceChildren();
  $("#events").replaceChildren();
  $("#usage-events").replaceChildren();
  $("#access-body").replaceChildren();
  $("#zonefile-text").textContent = "";
  app.current = null;
  if (location.hash) history.replaceState(null, "", location.pathname);
}

async function pickOrg() {
  const out = await api("GET", "/orgs");
  const orgs = (out && out.orgs) || [];
  if (!session.isAdmin() && orgs.length === 1) {
    session.setOrg(orgs[0].name);
    return true;
  }
  const sel = $("#org-select");
  sel.replaceChildren(...orgs.map((o) => new Option(o.name, o.name)));
  $("#org-form").hidden = orgs.length === 0;
  $("#orgs-empty").hidden = orgs.length > 0;
  $("#new-org-form").hidden = !session.isAdmin();
  clearErrors($("#new-org-form"));
  show("orgs");
  return false;
}

// route shows the view the fragment names. moveFocus puts the keyboard
// focus on the view's heading (not on the first load: a page that has just
// opened starts at its top).
async function route(moveFocus) {
  clearBanner();
  if (!session.key()) {
    showSignIn("", moveFocus);
    return;
  }
  const [view, ...rest] = location.hash.replace(/^#/, "").split("/");
  const arg = decodeURIComponent(rest.join("/"));
  if (view !== "accounts") hideSecret();
  try {
    if (!session.org() && !(await pickOrg())) return;
    switch (view) {
      case "add": showAddForm(); show("add", moveFocus); break;
      case "domain": await showDomain(app, arg); show("domain", moveFocus); break;
      case "accounts": await showAccounts(app); show("accounts", moveFocus); break;
      case "addresses": await showAddresses(app); show("addresses", moveFocus); break;
      case "usage": await showUsage(app); show("usage", moveFocus); break;
      default: await showDomainList(app); show("domains", moveFocus);
    }
  } catch (err) {
    if (app.handled(err)) return;
    if (err.status === 404 && view === "domain") {
      notice("There is no domain " + arg + " in this organization.");
      app.go("domains");
      return;
    }
    showBanner(err.message);
  }
}

function setUp() {
  $("#signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.currentTarget, input = $("#signin-key");
    const key = input.value.trim();
    input.value = ""; // the key is kept in session storage, not in the page
    clearErrors(form);
    if (key === "") {
      showError(form, { field: "Authorization", message: "Enter an organization key or the admin key." });
      return;
    }
    session.signIn(key);
    history.replaceState(null, "", location.pathname + "#domains");
    await route(true);
  });
  $("#org-form").addEventListener("submit", (e) => {
    e.preventDefault();
    session.setOrg($("#org-select").value);
    app.go("domains");
  });
  $("#new-org-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    clearErrors(form);
    try {
      const org = await api("POST", "/orgs", { name: $("#new-org-name").value.trim() });
      $("#new-org-name").value = "";
      session.setOrg(org.name);
      notice("Organization " + org.name + " created, with its sandbox domain " + org.sandbox_domain + ".");
      app.go("domains");
    } catch (err) {
      if (!app.handled(err)) showError(form, err);
    }
  });
  $("#sign-out").addEventListener("click", () => {
    forget();
    showSignIn();
    notice("Signed out: this tab no longer holds the key.");
  });
  $("#switch-org").addEventListener("click", () => {
    session.clearOrg();
    route(true);
  });
  for (const b of $$("#nav button")) b.addEventListener("click", () => app.go(b.dataset.view));
  $("#add-domain").addEventListener("click", () => app.go("add"));
  setUpAddForm(app);
  setUpDomainView(app);
  setUpAccounts(app);
  setUpAddresses(app);
  setUpUsage(app);
  window.addEventListener("hashchange", () => route(true));
}

setUp();
route(false);
