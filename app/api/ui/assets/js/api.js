// The console's only way to the server: the public API (/api/v1, /health) with the key the
// user pasted. The key lives in this tab's sessionStorage and nowhere else: no cookie, no
// localStorage, never in a URL. Closing the tab forgets it.

const KEY_ITEM = "ledger-incidences.api-key";
// The actions the API refused this key with 403 (the API has no "who am I": a role shows only
// by what it is refused). Kept beside the key, and forgotten with it.
const DENIED_ITEM = "ledger-incidences.denied";

export const apiKey = {
  get: () => sessionStorage.getItem(KEY_ITEM),
  set: (key) => {
    sessionStorage.removeItem(DENIED_ITEM);
    sessionStorage.setItem(KEY_ITEM, key);
  },
  forget: () => {
    sessionStorage.removeItem(DENIED_ITEM);
    sessionStorage.removeItem(KEY_ITEM);
  },
};

// What this key may not do, as the API said: `review`, `close` or `force`.
export const denied = {
  has: (action) => deniedActions().includes(action),
  add: (action) => {
    const actions = new Set(deniedActions()).add(action);
    sessionStorage.setItem(DENIED_ITEM, JSON.stringify([...actions]));
  },
};

function deniedActions() {
  try {
    const actions = JSON.parse(sessionStorage.getItem(DENIED_ITEM) || "[]");
    return Array.isArray(actions) ? actions : [];
  } catch {
    return [];
  }
}

// A failed call: `status` is the HTTP status (0 when the server could not be reached),
// `problem` the RFC 9457 body when there is one, `retryAfter` the seconds a 429 asks to wait.
export class ApiError extends Error {
  constructor(status, problem, retryAfter = null) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.retryAfter = retryAfter;
  }
}

// What happened, in words, for every failure a page can meet.
export function describe(error) {
  if (!(error instanceof ApiError)) return `The console failed: ${error.message}`;
  const detail = error.problem?.detail ? ` ${error.problem.detail}` : "";
  switch (error.status) {
    case 0:
      return `The API could not be reached (network error or server down). ${error.problem.detail}`;
    case 401:
      return "The API refused the key (401): it is unknown, revoked or mistyped. Paste a valid key.";
    case 403:
      return `This key's role may not do this (403).${detail}`;
    case 404:
      return `Not found (404).${detail}`;
    case 429:
      return error.retryAfter === null
        ? "Too many requests (429): the rate limit is reached. Wait a little and retry."
        : `Too many requests (429): the rate limit is reached. Retry in ${error.retryAfter} s.`;
    default:
      return `The API answered ${error.status} ${error.problem?.title || ""}.${detail}`;
  }
}

function url(path, params) {
  const target = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== null && value !== undefined && value !== "") {
      target.searchParams.set(name, String(value));
    }
  }
  return target;
}

async function request(path, params, headers, method = "GET", body = undefined) {
  let response;
  try {
    response = await fetch(url(path, params), { method, headers, body, credentials: "omit" });
  } catch (error) {
    throw new ApiError(0, { title: "The API could not be reached", detail: error.message });
  }
  return response;
}

async function problemOf(response) {
  const type = response.headers.get("content-type") || "";
  if (!type.includes("json")) return { title: response.statusText || `HTTP ${response.status}` };
  try {
    return await response.json();
  } catch {
    return { title: response.statusText };
  }
}

function retryAfterSeconds(response) {
  const value = response.headers.get("retry-after");
  if (value === null) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  // The HTTP-date form: seconds from now.
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

function authorized(headers) {
  const key = apiKey.get();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}

async function answer(response) {
  if (!response.ok) {
    throw new ApiError(response.status, await problemOf(response), retryAfterSeconds(response));
  }
  return response.json();
}

// GET an /api/v1 path (without the prefix); its JSON, or an ApiError.
export async function get(path, params) {
  const headers = authorized({ Accept: "application/json" });
  return answer(await request(`/api/v1${path}`, params, headers));
}

// PUT or PATCH `body` (as JSON) to an /api/v1 path; the API's answer (the changed resource,
// fresh: pages show it rather than reading it again), or an ApiError.
export async function send(method, path, body) {
  const headers = authorized({ Accept: "application/json", "Content-Type": "application/json" });
  return answer(await request(`/api/v1${path}`, null, headers, method, JSON.stringify(body)));
}

// /health needs no key, and a failing service answers 503 with the same document.
export async function health() {
  const response = await request("/health", null, { Accept: "application/health+json" });
  if (response.status !== 200 && response.status !== 503) {
    throw new ApiError(response.status, await problemOf(response), retryAfterSeconds(response));
  }
  return response.json();
}

// Run `task` over `items` with at most `limit` at once, keeping their order.
export async function eachLimited(items, limit, task) {
  const results = new Array(items.length);
  let next = 0;
  async function lane() {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}
