// The JSON API: one fetch wrapper, and the error shape every failure is turned into.

/** A failed request: `status` 0 and `code` "network" when the request never got an answer. */
export class HttpError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Calls the API with a JSON body (when given) and the session cookie; resolves to the JSON
 * answer (null for 204), rejects with an `HttpError` carrying the contract's error code and
 * message. A 401 also sends the page to /login.
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
    throw new HttpError(0, "network", "You are offline; try again when the connection is back.");
  }
  if (res.status === 204) return null;
  let data = null;
  try {
    data = await res.json();
  } catch {
    /* not JSON */
  }
  if (!res.ok) {
    if (res.status === 401) {
      location.assign("/login");
    }
    const err = data && data.error;
    throw new HttpError(res.status, err ? err.code : "http", err ? err.message : `HTTP ${res.status}`);
  }
  return data;
}
