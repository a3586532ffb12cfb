// The Usage view: for the organization and each SMTP account, the
// recipients counted in the current minute, hour and day against their
// sending limits, the recipients refused today, and the latest limit
// events. Read-only: limits are set through the API (docs/limits.md).

import { api, orgPath } from "./api.js";
import { $, el, timeEl, notice, busy } from "./ui.js";

// windows are the usage report's windows, in order, with how the page
// names the current one.
const windows = [["minute", "this minute"], ["hour", "this hour"], ["day", "today"]];

const plural = (n, one, many) => n + " " + (n === 1 ? one : many);

// windowText says one window's count against its limit:
// "42 of 100 recipients this hour", "3 recipients today (no limit)".
export function windowText(w, when) {
  const count = (w && w.count) || 0;
  const limit = (w && w.limit) || 0;
  if (limit <= 0) return plural(count, "recipient", "recipients") + " " + when + " (no limit)";
  return count + " of " + plural(limit, "recipient", "recipients") + " " + when;
}

function windowCell(w, when) {
  const cell = el("td", { "data-window": when }, windowText(w, when));
  if (w && w.limit > 0 && w.count >= w.limit) {
    cell.append(el("br"), el("span", { class: "badge badge-failing" }, "Limit reached"),
      " frees up ", timeEl(w.end));
  }
  return cell;
}

export async function showUsage(app) {
  const out = await api("GET", orgPath("/usage"));
  const body = $("#usage-table tbody");
  body.replaceChildren();
  for (const [i, s] of ((out && out.scopes) || []).entries()) {
    const isOrg = s.scope === "organization";
    const head = el("th", { scope: "row", id: "usage-row-" + i },
      isOrg ? "Organization " + s.name + " (all accounts)" : s.name,
      isOrg ? null : el("br"), isOrg ? null : el("code", {}, s.username),
      el("br"), el("span", { class: "hint" }, s.source === "set" ? "limits set" : "default limits"));
    const row = el("tr", { "data-scope": s.scope, "data-name": isOrg ? "" : s.name }, head);
    for (const [win, when] of windows) row.append(windowCell(s.windows && s.windows[win], when));
    row.append(el("td", { "data-refused": "" }, plural(s.refused_today || 0, "recipient", "recipients") + " refused today"));
    body.append(row);
  }
  const events = (out && out.events) || [];
  $("#usage-events").replaceChildren(...events.map((ev) =>
    el("li", {}, timeEl(ev.at), " ", el("strong", {}, ev.kind === "limit.reached" ? "Limit reached" : ev.kind === "limits.changed" ? "Limits changed" : ev.kind), ": ", ev.detail)));
  $("#usage-events-empty").hidden = events.length > 0;
  $("#usage-at").replaceChildren(timeEl(out && out.at));
}

export function setUpUsage(app) {
  const refresh = $("#usage-refresh");
  refresh.addEventListener("click", () => busy(refresh, async () => {
    try {
      await showUsage(app);
      notice("Usage refreshed.");
    } catch (err) {
      app.handled(err) || app.alert(err.message);
    }
  }));
}
