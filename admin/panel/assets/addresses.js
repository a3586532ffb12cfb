// The Email addresses view: list with status, add (a confirmation email
// goes out), resend, delete.

import { api, orgPath } from "./api.js";
import { $, el, button, badge, timeEl, notice, clearErrors, showError, confirmAction, busy } from "./ui.js";

const addressWords = { pending: "Pending", confirmed: "Confirmed", expired: "Expired" };

const addressPath = (email, rest) => orgPath("/addresses/" + encodeURIComponent(email) + (rest || ""));

export async function showAddresses(app) {
  const out = await api("GET", orgPath("/addresses"));
  const body = $("#address-table tbody");
  body.replaceChildren();
  const list = (out && out.addresses) || [];
  list.forEach((a, i) => {
    const id = "address-row-" + i;
    const actions = el("td", { class: "actions-cell" });
    if (a.status !== "confirmed") {
      actions.append(button("Resend", (e) => resend(app, a, e.currentTarget), { "aria-describedby": id }));
    }
    actions.append(button("Delete", () => remove(app, a), { class: "danger", "aria-describedby": id }));
    const status = el("td", {}, badge(a.status, addressWords[a.status] || a.status));
    if (a.status === "pending" && a.expires_at) status.append(el("div", { class: "hint" }, "link valid until ", timeEl(a.expires_at)));
    if (a.status === "expired") status.append(el("div", { class: "hint" }, "the link expired: press Resend"));
    body.append(el("tr", { "data-email": a.email },
      el("th", { scope: "row", id }, a.email),
      status,
      el("td", {}, timeEl(a.created_at)),
      el("td", {}, timeEl(a.confirmed_at, "not yet")),
      actions,
    ));
  });
  if (list.length === 0) {
    body.append(el("tr", {}, el("td", { colspan: "5", class: "empty" }, "No addresses yet.")));
  }
}

async function resend(app, a, btn) {
  await busy(btn, async () => {
    try {
      await api("POST", addressPath(a.email, "/resend"));
      notice("A new confirmation email was sent to " + a.email + "; the previous link no longer works.");
      await showAddresses(app);
    } catch (err) {
      app.handled(err) || app.alert(err.message);
    }
  });
}

async function remove(app, a) {
  const yes = await confirmAction("Delete " + a.email + "?",
    "The address is no longer authorized as a sender; adding it again sends a new confirmation email.", "Delete " + a.email);
  if (!yes) return;
  try {
    await api("DELETE", addressPath(a.email));
    notice(a.email + " was deleted.");
    await showAddresses(app);
  } catch (err) {
    app.handled(err) || app.alert(err.message);
  }
}

export function setUpAddresses(app) {
  const form = $("#address-form");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    await busy(form.querySelector('button[type="submit"]'), async () => {
      clearErrors(form);
      const email = $("#address-email").value.trim();
      try {
        await api("POST", orgPath("/addresses"), { email });
        $("#address-email").value = "";
        notice("A confirmation email was sent to " + email + ". The address is confirmed once its owner presses Confirm on the linked page.");
        await showAddresses(app);
      } catch (err) {
        if (app.handled(err)) return;
        if (err.status === 422) {
          // The API's sentence says which domain and why; say what to do.
          err.field = "email";
          err.message = "This address cannot be added yet: " + err.message +
            " An address can be authorized only under a domain of this organization that is verified (see Domains).";
        }
        showError(form, err);
      }
    });
  });
}
