// The page's JSON calls and its token. The token comes from the address
// (#token=..., as the server prints it) or from the token form, and is kept in
// sessionStorage: for this tab only, never in the address bar after the first load.

const KEY = "paintwire-token";

export class HttpError extends Error {
  constructor(status, text) {
    super(text.trim() || `HTTP ${status}`);
    this.status = status;
  }
}

export function takeTokenFromAddress() {
  const match = location.hash.match(/(?:^#|&)token=([^&]*)/);
  if (match) {
    sessionStorage.setItem(KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}

export function token() {
  return sessionStorage.getItem(KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

// For addresses the browser loads by itself (<img src>, downloads), which cannot
// carry an Authorization header: the server also reads ?token=.
export function withToken(url) {
  const t = token();
  return t ? `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(t)}` : url;
}

// The server's sentence: JSON {"error": {"code", "message"}} from the history
// routes, plain text from the others.
async function errorText(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && body.error && body.error.message) return body.error.message;
  } catch {
    // not JSON: the text is the sentence
  }
  return text;
}

async function call(method, path, body) {
  const headers = {};
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!response.ok) {
    const error = new HttpError(response.status, await errorText(response));
    if (response.status === 401) window.dispatchEvent(new CustomEvent("paintwire-unauthorized", { detail: error.message }));
    throw error;
  }
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : null;
}

export const getJSON = (path) => call("GET", path);
export const postJSON = (path, body) => call("POST", path, body);
export const deleteJSON = (path) => call("DELETE", path);
