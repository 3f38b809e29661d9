// The JSON API: one fetch wrapper, and the error shape every failure is turned into.

/**
 * A failed request: `status` 0 and `code` "network" when the request never got an answer;
 * `retryAfter` the seconds a `Retry-After` header asked for (null without one).
 */
export class HttpError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/**
 * Why the login page is shown instead of the chat, as `/login?reason=` (login.js turns the
 * key into a sentence). The page cannot tell an expired session from a rotated secret or a
 * ban: the server answers 401 for all of them, so one reason covers them.
 */
export const SESSION_ENDED_URL = "/login?reason=session_ended";

let beforeSessionEnds = () => {};

/** Runs `fn` just before the page leaves for the login because the session ended. */
export function whenSessionEnds(fn) {
  beforeSessionEnds = fn;
}

/**
 * Calls the API with a JSON body (when given) and the session cookie; resolves to the JSON
 * answer (null for 204), rejects with an `HttpError` carrying the contract's error code and
 * message. A 401 also sends the page to /login, saying the session ended.
 */
export async function api(method, path, body) {
  const init = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    // fetch rejects when no answer came at all: the server is down or the network is. The
    // browser knows when it has no network at all; otherwise it is the server.
    const message = navigator.onLine
      ? "The server is unreachable right now."
      : "You are offline: the network is down.";
    throw new HttpError(0, "network", message);
  }
  if (res.status === 204) return null;
  let data = null;
  try {
    data = await res.json();
  } catch {
    /* not JSON */
  }
  if (!res.ok) {
    // A wrong password where one is asked again (deleting the account) is the caller's to
    // show; any other 401 means the session is gone.
    const ended = !(data && data.error && data.error.code === "invalid_credentials");
    if (res.status === 401 && ended) {
      try {
        beforeSessionEnds();
      } finally {
        location.assign(SESSION_ENDED_URL);
      }
    }
    const err = data && data.error;
    const after = Number(res.headers.get("Retry-After"));
    throw new HttpError(
      res.status,
      err ? err.code : "http",
      err ? err.message : `HTTP ${res.status}`,
      res.headers.has("Retry-After") && Number.isFinite(after) && after >= 0 ? after : null,
    );
  }
  return data;
}
