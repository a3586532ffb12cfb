// The panel's only way to the server: the public /v1 API, with the key
// the user signed in with as the bearer header. The key lives in this
// tab's sessionStorage and nowhere else: never in a URL, never in the page.

const keyItem = "sendergate.key";
const orgItem = "sendergate.org";

export const session = {
  key: () => sessionStorage.getItem(keyItem) || "",
  org: () => sessionStorage.getItem(orgItem) || "",
  isAdmin: () => session.key() !== "" && !session.key().startsWith("sgk_"),
  signIn(key) { sessionStorage.setItem(keyItem, key); sessionStorage.removeItem(orgItem); },
  setOrg(org) { sessionStorage.setItem(orgItem, org); },
  clearOrg() { sessionStorage.removeItem(orgItem); },
  clear() { sessionStorage.removeItem(keyItem); sessionStorage.removeItem(orgItem); },
};

// APIError is a failed call: the HTTP status and the API's error body
// ({"error": {"code", "field", "message"}}).
export class APIError extends Error {
  constructor(status, code, field, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || "";
    this.retryAfter = retryAfter;
  }
}

export const unavailableText = "The service is temporarily unavailable. Nothing was changed; try again in a moment.";

// handlers.unauthorized runs on a 401 (the key is wrong or was deleted);
// handlers.unavailable on a 503 or when the server cannot be reached.
export const handlers = { unauthorized: () => {}, unavailable: () => {}, available: () => {} };

// api calls METHOD /v1/PATH and returns the decoded JSON answer (null for
// 204; the text itself with {text: true}), or throws an APIError.
export async function api(method, path, body, opts) {
  const headers = { "Authorization": "Bearer " + session.key() };
  const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch("/v1" + path, init);
  } catch (e) {
    handlers.unavailable();
    throw new APIError(0, "unreachable", "", unavailableText);
  }
  const text = await resp.text();
  if (resp.ok && opts && opts.text) {
    handlers.available();
    return text;
  }
  let data = null;
  if (text !== "") {
    try { data = JSON.parse(text); } catch (e) { data = null; }
  }
  if (resp.ok) {
    handlers.available();
    return data;
  }
  const err = (data && data.error) || {};
  if (resp.status === 401) {
    handlers.unauthorized();
    throw new APIError(401, err.code || "unauthorized", "Authorization",
      "This key was not accepted (it may have been deleted). Sign in again with a valid key.");
  }
  if (resp.status === 503 && err.code !== "delivery_failed") {
    handlers.unavailable();
    throw new APIError(503, err.code || "unavailable", "", unavailableText);
  }
  let message = err.message || ("The request failed with HTTP status " + resp.status + ".");
  if (resp.status === 429) {
    const after = Number(resp.headers.get("Retry-After") || 0);
    if (after > 0) message += " (Try again in " + waitText(after) + ".)";
  }
  throw new APIError(resp.status, err.code || "", err.field || "", message);
}

// waitText says a number of seconds in words.
export function waitText(secs) {
  if (secs < 90) return secs + (secs === 1 ? " second" : " seconds");
  const min = Math.ceil(secs / 60);
  return min + " minutes";
}

// orgPath is the API path of the signed-in organization, plus rest.
export function orgPath(rest) {
  return "/orgs/" + encodeURIComponent(session.org()) + rest;
}
