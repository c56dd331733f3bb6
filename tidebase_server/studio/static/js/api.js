// Talking to the server: the API key (sessionStorage) goes in the Authorization header of
// every fetch, and as ?token= on the event stream only (EventSource cannot send headers).

const KEY = "tidebase.studio.key";
// Studio is served at <base>/studio/; the API lives at <base>/.
export const BASE = location.pathname.replace(/\/studio(\/.*)?$/, "");

export class AuthRequired extends Error {
  constructor(hadKey) {
    super(hadKey ? "the server refused this API key (401)" : "this server needs its API key");
    this.hadKey = hadKey;
  }
}

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY);
}

export function setKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
}

const authListeners = new Set();
/** Called with an AuthRequired error whenever the server answers 401. */
export function onAuthRequired(fn) {
  authListeners.add(fn);
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = { accept: "application/json" };
  const key = getKey();
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let res;
  try {
    res = await fetch(BASE + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, `cannot reach the server (${err.message}); is tidebase serve running?`);
  }
  if (res.status === 401) {
    const err = new AuthRequired(Boolean(key));
    for (const fn of authListeners) fn(err);
    throw err;
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok) {
    const message = (data && data.error) || `${method} ${path} answered ${res.status}`;
    throw new ApiError(res.status, message, data && data.code);
  }
  return data;
}

export function runPath(runId) {
  return `/runs/${encodeURIComponent(runId)}`;
}

/** The run's SSE URL; the key rides along as ?token= (accepted on this route only). */
export function eventsUrl(runId, after = 0) {
  const params = new URLSearchParams();
  if (after) params.set("after", String(after));
  const key = getKey();
  if (key) params.set("token", key);
  const query = params.toString();
  return `${BASE}${runPath(runId)}/events${query ? "?" + query : ""}`;
}
