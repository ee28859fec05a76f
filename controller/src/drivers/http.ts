// The generic http type: every request goes to baseUrl or a path under it, with the
// configured auth (config.auth {scheme: none|bearer|basic|header} and the `token` credential)
// and extra config.headers.
//
// - health: GET baseUrl + (config.healthPath ?? healthProbe.path ?? "/"); healthy when the
//   status is healthProbe.expectStatus, else any 2xx. Only the status is read.
// - fetch: GET or HEAD input.path (under baseUrl) with input.query; mutate: POST, PUT, PATCH
//   or DELETE with a JSON body and the caller's Idempotency-Key. Both return the status, a
//   subset of the response headers and the body (JSON when it is JSON, else text, base64 for
//   binary types), cut at input.maxBytes (truncated: true).
// - deliverEvent: one delivery of a CloudEvents 1.0 envelope (structured mode) with the
//   config's method to config.eventPath (v2) or baseUrl itself; retries are the gateway's.
//
// A path that could leave baseUrl (., .., their percent-encodings, encoded slashes or
// backslashes, //host, a query or fragment) is refused before anything is sent; any non-2xx
// status is the classed failure of httpClient (401/403 auth, 429 quota with Retry-After, 5xx
// transient), with the status in providerStatusCode.
import { randomUUID } from "node:crypto";
import type { ConnectorError } from "../api/errors.ts";
import type { JsonObject, JsonValue, TypeVersion } from "../api/types.ts";
import { configError, inputError, int, obj, requireStr, str } from "./config.ts";
import type { Driver, DriverCall, OperationResult, ProviderReply, Target } from "./driver.ts";
import { requireCredentials, where } from "./failures.ts";
import { expectStatus, httpRequest, joinUrl, urlTarget, type HttpResponse } from "./httpClient.ts";

const DEFAULT_MAX_BYTES = 256 * 1024;
const MAX_BYTES = 4 * 1024 * 1024;
const DEFAULT_EVENT_RESPONSE_BYTES = 64 * 1024;
const DEFAULT_ACCEPT = "application/json, text/*;q=0.9, */*;q=0.8";
/** Response headers a caller may need; cookies and anything else stay behind. */
const RESPONSE_HEADERS = [
  "content-type",
  "content-length",
  "content-language",
  "etag",
  "last-modified",
  "cache-control",
  "expires",
  "location",
  "link",
  "retry-after",
  "x-request-id",
  "x-ratelimit-limit",
  "x-ratelimit-remaining",
  "x-ratelimit-reset",
];

const baseUrl = (config: JsonObject): string => requireStr(config, "baseUrl", "http");

function healthUrl(config: JsonObject, version: TypeVersion): URL {
  return joinUrl(
    "http",
    "baseUrl",
    baseUrl(config),
    str(config, "healthPath") ?? version.healthProbe.path ?? "/",
  );
}

function authHeaders(call: DriverCall): Record<string, string> {
  const auth = obj(call.config, "auth");
  const scheme = (auth && str(auth, "scheme")) ?? "none";
  if (scheme === "none") return {};
  if (scheme !== "bearer" && scheme !== "basic" && scheme !== "header")
    throw configError(
      where(call),
      ["auth", "scheme"],
      `${JSON.stringify(scheme)} is not a known auth scheme`,
    );
  const { token } = requireCredentials(call, ["token"]);
  if (scheme === "bearer") return { authorization: `Bearer ${token}` };
  if (scheme === "basic") {
    const username = (auth && str(auth, "username")) ?? "";
    if (username.includes(":")) throw configError(where(call), ["auth", "username"], "must not contain ':'");
    return { authorization: `Basic ${Buffer.from(`${username}:${token}`).toString("base64")}` };
  }
  const name = auth && str(auth, "headerName");
  if (!name) throw configError(where(call), ["auth", "headerName"], "is missing");
  return { [name.toLowerCase()]: token };
}

function configHeaders(config: JsonObject): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj(config, "headers") ?? {}))
    if (typeof v === "string") out[k.toLowerCase()] = v;
  return out;
}

/** Request headers: ours, then the config's, then the call's own, then auth (which nothing overrides). */
function headers(call: DriverCall, defaults: Record<string, string>, own: Record<string, string> = {}) {
  return { ...defaults, ...configHeaders(call.config), ...own, ...authHeaders(call) };
}

async function health(call: DriverCall): Promise<ProviderReply> {
  const res = await httpRequest(call, {
    method: "GET",
    url: healthUrl(call.config, call.version),
    headers: headers(call, { accept: "*/*" }),
    wantBody: false,
  });
  expectStatus(call, res, call.version.healthProbe.expectStatus);
  return { providerStatusCode: res.status };
}

// --- requests under baseUrl -----------------------------------------------------------------

/** Why a path could leave baseUrl, or undefined when it stays under it. */
function unsafePath(path: string): string | undefined {
  if (!path.startsWith("/") || path.startsWith("//")) return "must start with a single /";
  if (/[^\x21-\x7e]/.test(path)) return "must be printable ASCII without spaces (percent-encode the rest)";
  if (/[?#\\]/.test(path)) return "must not contain ?, # or \\ (use query for parameters)";
  if (/%(2e|2f|5c)/i.test(path)) return "must not percent-encode a dot, slash or backslash";
  if (path.split("/").some((segment) => segment === "." || segment === ".."))
    return "must not contain . or .. segments";
  return undefined;
}

/** baseUrl + path, refused when the result is not under baseUrl. */
function urlUnder(call: DriverCall, path: string, fail: (what: string) => ConnectorError): URL {
  const why = unsafePath(path);
  if (why) throw fail(why);
  const base = new URL(baseUrl(call.config));
  const url = joinUrl("http", "baseUrl", base.href, path);
  const prefix = base.pathname.replace(/\/+$/, "");
  if (url.host !== base.host || !url.pathname.startsWith(`${prefix}/`)) throw fail("leaves baseUrl");
  return url;
}

function withQuery(url: URL, query: JsonObject | undefined): URL {
  for (const [key, value] of Object.entries(query ?? {}))
    for (const v of Array.isArray(value) ? value : [value])
      if (v !== null && typeof v !== "object") url.searchParams.append(key, String(v));
  return url;
}

function inputUrl(input: JsonObject, call: DriverCall): URL {
  const url = urlUnder(call, str(input, "path") ?? "", (what) => inputError(where(call), "path", what));
  return withQuery(url, obj(input, "query"));
}

function maxBytes(input: JsonObject, fallback = DEFAULT_MAX_BYTES): number {
  return Math.min(int(input, "maxBytes") ?? fallback, MAX_BYTES);
}

function pickHeaders(res: HttpResponse): JsonObject {
  const out: JsonObject = {};
  for (const name of RESPONSE_HEADERS) {
    const v = res.headers[name];
    if (v !== undefined) out[name] = Array.isArray(v) ? v.join(", ") : v;
  }
  return out;
}

const JSON_TYPE = /^application\/([a-z0-9.+-]*\+)?json\b/;
const TEXT_TYPE =
  /^(text\/|application\/([a-z0-9.+-]*\+)?(xml|json|javascript|x-www-form-urlencoded|yaml|x-ndjson)\b)/;

function bodyOf(res: HttpResponse): { bodyFormat: string; body: JsonValue } {
  if (res.body.length === 0) return { bodyFormat: "empty", body: null };
  const type = String(res.headers["content-type"] ?? "").toLowerCase();
  if (JSON_TYPE.test(type) && !res.truncated) {
    try {
      return { bodyFormat: "json", body: JSON.parse(res.body.toString("utf8")) as JsonValue };
    } catch {
      // Not JSON after all: returned as the text it is.
    }
  }
  if (type === "" || TEXT_TYPE.test(type)) return { bodyFormat: "text", body: res.body.toString("utf8") };
  return { bodyFormat: "base64", body: res.body.toString("base64") };
}

/** The result of a request: the classed failure unless 2xx, else status, headers and body. */
function response(call: DriverCall, res: HttpResponse, extra: JsonObject = {}): OperationResult {
  expectStatus(call, res);
  return {
    data: {
      ...extra,
      status: res.status,
      headers: pickHeaders(res),
      ...bodyOf(res),
      truncated: res.truncated,
    },
    providerStatusCode: res.status,
    ...(res.truncated ? { warnings: [`the response body was cut at ${res.body.length} bytes`] } : {}),
  };
}

function idempotencyHeader(input: JsonObject): Record<string, string> {
  const key = str(input, "idempotencyKey");
  return key === undefined ? {} : { "idempotency-key": key };
}

async function fetch(input: JsonObject, call: DriverCall): Promise<OperationResult> {
  const method = str(input, "method") ?? "GET";
  if (method !== "GET" && method !== "HEAD") throw inputError(where(call), "method", "must be GET or HEAD");
  const accept = str(input, "accept");
  if (accept !== undefined && !/^[\x20-\x7e]*$/.test(accept))
    throw inputError(where(call), "accept", "must be printable ASCII");
  const res = await httpRequest(call, {
    method,
    url: inputUrl(input, call),
    headers: headers(call, { accept: DEFAULT_ACCEPT }, accept === undefined ? {} : { accept }),
    wantBody: method === "GET",
    maxBodyBytes: maxBytes(input),
    truncateBody: true,
  });
  return response(call, res);
}

const MUTATING = ["POST", "PUT", "PATCH", "DELETE"];

async function mutate(input: JsonObject, call: DriverCall): Promise<OperationResult> {
  const method = str(input, "method") ?? "";
  if (!MUTATING.includes(method))
    throw inputError(where(call), "method", `must be one of ${MUTATING.join(", ")}`);
  const body = input["body"] === undefined ? undefined : Buffer.from(JSON.stringify(input["body"]));
  const res = await httpRequest(call, {
    method,
    url: inputUrl(input, call),
    headers: headers(
      call,
      { accept: DEFAULT_ACCEPT, ...(body ? { "content-type": "application/json" } : {}) },
      idempotencyHeader(input),
    ),
    ...(body ? { body } : {}),
    wantBody: true,
    maxBodyBytes: maxBytes(input),
    truncateBody: true,
  });
  return response(call, res);
}

// --- deliverEvent -----------------------------------------------------------------------------

function eventUrl(call: DriverCall): URL {
  const path = str(call.config, "eventPath");
  if (path === undefined) {
    // baseUrl itself (target() has checked it): joining "" would add a trailing slash.
    const url = new URL(baseUrl(call.config));
    url.hash = "";
    return url;
  }
  return urlUnder(call, path, (what) => configError(where(call), "eventPath", what));
}

/** The CloudEvents 1.0 envelope; the id defaults to the idempotency key, so a replay is the same event. */
function envelope(input: JsonObject): { id: string; event: JsonObject } {
  const id = str(input, "id") ?? str(input, "idempotencyKey") ?? randomUUID();
  const subject = str(input, "subject");
  const event: JsonObject = {
    specversion: "1.0",
    id,
    source: str(input, "source") ?? "/cynode/connector-gateway",
    type: str(input, "type") ?? "",
    ...(subject !== undefined ? { subject } : {}),
    time: str(input, "time") ?? new Date().toISOString(),
    datacontenttype: "application/json",
    data: input["data"] ?? null,
  };
  return { id, event };
}

async function deliverEvent(input: JsonObject, call: DriverCall): Promise<OperationResult> {
  const method = str(call.config, "method") ?? "POST";
  if (method === "GET")
    throw configError(where(call), "method", "GET cannot deliver an event (a body is sent)");
  if (!str(input, "type")) throw inputError(where(call), "type", "is required");
  const { id, event } = envelope(input);
  const res = await httpRequest(call, {
    method,
    url: eventUrl(call),
    headers: headers(
      call,
      { accept: DEFAULT_ACCEPT, "content-type": "application/cloudevents+json; charset=utf-8" },
      idempotencyHeader(input),
    ),
    body: Buffer.from(JSON.stringify(event)),
    wantBody: true,
    maxBodyBytes: maxBytes(input, DEFAULT_EVENT_RESPONSE_BYTES),
    truncateBody: true,
  });
  return { ...response(call, res, { eventId: id }), remoteChangeIds: [id] };
}

export const httpDriver: Driver = {
  target: (config: JsonObject, version: TypeVersion): Target => urlTarget(healthUrl(config, version)),
  health,
  operations: { fetch, mutate, deliverEvent },
};
