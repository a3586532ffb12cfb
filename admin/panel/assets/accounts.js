// The SMTP accounts view: list, create (the password shown once), rotate,
// delete.

import { api, orgPath } from "./api.js";
import { $, el, button, timeEl, notice, copyText, clearErrors, showError, confirmAction, busy } from "./ui.js";

const accountPath = (name, rest) => orgPath("/smtp-accounts/" + encodeURIComponent(name) + (rest || ""));

export async function showAccounts(app) {
  const out = await api("GET", orgPath("/smtp-accounts"));
  const body = $("#account-table tbody");
  body.replaceChildren();
  const accounts = (out && out.accounts) || [];
  accounts.forEach((a, i) => {
    const id = "account-row-" + i;
    body.append(el("tr", { "data-account": a.name },
      el("th", { scope: "row", id }, a.name),
      el("td", {}, el("code", {}, a.username)),
      el("td", {}, timeEl(a.created_at)),
      el("td", {}, timeEl(a.updated_at)),
      el("td", { class: "actions-cell" },
        button("Rotate password", (e) => rotate(app, a, e.currentTarget), { "aria-describedby": id }),
        button("Delete", () => remove(app, a), { class: "danger", "aria-describedby": id })),
    ));
  });
  if (accounts.length === 0) {
    body.append(el("tr", {}, el("td", { colspan: "5", class: "empty" }, "No SMTP accounts yet: create one for each application that sends mail.")));
  }
}

// showSecret shows a password once, with Copy buttons and the warning.
function showSecret(acct) {
  $("#secret-account").textContent = acct.name;
  $("#secret-username").textContent = acct.username;
  $("#secret-password").textContent = acct.password;
  $("#secret").hidden = false;
  $("#secret-title").focus();
}

// hideSecret takes the password out of the page.
export function hideSecret() {
  $("#secret").hidden = true;
  $("#secret-password").textContent = "";
  $("#secret-username").textContent = "";
}

async function rotate(app, a, btn) {
  const yes = await confirmAction("Rotate the password of " + a.name + "?",
    "A new password is generated and the current one stops working at once: sessions that signed in with it are ended, and the application needs the new password.",
    "Rotate password");
  if (!yes) { btn.focus(); return; }
  try {
    const out = await api("POST", accountPath(a.name, "/password"));
    showSecret(out);
    await showAccounts(app);
  } catch (err) {
    app.handled(err) || app.alert(err.message);
  }
}

async function remove(app, a) {
  const yes = await confirmAction("Delete the account " + a.name + "?",
    "Applications that use " + a.username + " can no longer send mail, and the account disappears from the access lists of every domain.",
    "Delete " + a.name);
  if (!yes) return;
  try {
    await api("DELETE", accountPath(a.name));
    hideSecret();
    notice("The account " + a.name + " was deleted.");
    await showAccounts(app);
  } catch (err) {
    app.handled(err) || app.alert(err.message);
  }
}

export function setUpAccounts(app) {
  const form = $("#account-form");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    await busy(form.querySelector('button[type="submit"]'), async () => {
      clearErrors(form);
      try {
        const out = await api("POST", orgPath("/smtp-accounts"), { name: $("#account-name").value.trim() });
        $("#account-name").value = "";
        await showAccounts(app);
        showSecret(out);
      } catch (err) {
        if (!app.handled(err)) showError(form, err);
      }
    });
  });
  $("#copy-username").addEventListener("click", () => copyText($("#secret-username").textContent, "the username"));
  $("#copy-password").addEventListener("click", () => copyText($("#secret-password").textContent, "the password"));
  $("#secret-done").addEventListener("click", () => { hideSecret(); $("#account-name").focus(); });
}
