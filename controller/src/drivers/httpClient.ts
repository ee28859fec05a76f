// The one HTTP client of the HTTP-based drivers (http, mattermost, discord), on node:http(s):
// one fresh connection per request to the call's target (no agent, no keep-alive), redirects
// never followed, response bodies capped, and one reading of a provider's status:
// 401/403 => AuthenticationFailed; 429 => quota_exceeded with Retry-After; 408 and 5xx =>
// transient; any other unexpected status (3xx included) => permanent.
import * as http from "node:http";
import * as https from "node:https";
import { ConnectorError } from "../api/errors.ts";
import { AUTHENTICATION_FAILED } from "../api/model.ts";
import type { JsonValue } from "../api/types.ts";
import { configError, displayUrl } from "./config.ts";
import type { DriverCall, Target } from "./driver.ts";
import { urlHost } from "./egress.ts";
import { where } from "./failures.ts";
import { tlsOptions, warnInsecure } from "./tls.ts";

export const MAX_RESPONSE_BYTES = 256 * 1024;

/** base + path, from a config field holding the base URL; the field is named when it cannot be used. */
export function joinUrl(kind: string, field: string, base: string, path: string): URL {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw configError(kind, field, "is not a valid URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:")
    throw configError(kind, field, "must be http or https");
  if (url.username !== "" || url.password !== "")
    throw configError(kind, field, "must not carry credentials (use auth and the token credential)");
  const rel = new URL(path.startsWith("/") ? path : `/${path}`, "http://placeholder");
  url.pathname = url.pathname.replace(/\/+$/, "") + rel.pathname;
  url.search = rel.search;
  url.hash = "";
  return url;
}

/** The target of a request to this URL: the host as the URL parser canonicalised it. */
export function urlTarget(url: URL, method = "GET"): Target {
  const port = url.port !== "" ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
  return { host: urlHost(url), port, display: `${method} ${displayUrl(url)}` };
}

export interface HttpRequest {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body?: Buffer;
  /** false: answer as soon as the status is known and hang up. */
  wantBody: boolean;
  maxBodyBytes?: number;
  /** A body over maxBodyBytes: true keeps its first maxBodyBytes (truncated), else the call fails. */
  truncateBody?: boolean;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The body was cut at maxBodyBytes (only with truncateBody). */
  truncated: boolean;
}

/** Sends one request to the call's target (only there: the egress check was made for it). */
export function httpRequest(call: DriverCall, req: HttpRequest): Promise<HttpResponse> {
  const { url } = req;
  if (urlHost(url) !== call.target.host)
    throw new ConnectorError(
      "permanent",
      "InvalidConfig",
      `${where(call)}: a request may only go to the target host`,
    );
  const isHttps = url.protocol === "https:";
  if (!isHttps && req.headers["authorization"] !== undefined)
    warnInsecure(call, "credentials sent over plain http");
  const maxBody = req.maxBodyBytes ?? MAX_RESPONSE_BYTES;
  const options: https.RequestOptions = {
    method: req.method,
    protocol: url.protocol,
    hostname: call.target.host,
    port: call.target.port,
    path: `${url.pathname}${url.search}`,
    headers: {
      "user-agent": "connector-controller",
      ...req.headers,
      host: url.host,
      connection: "close",
      ...(req.body ? { "content-length": String(req.body.length) } : {}),
    },
    agent: false,
    signal: call.signal,
    timeout: call.timeoutMs,
    maxHeaderSize: 64 * 1024,
  };
  if (isHttps) Object.assign(options, tlsOptions(call));
  return new Promise<HttpResponse>((resolve, reject) => {
    const request = (isHttps ? https : http).request(options, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        if (!req.wantBody) return;
        size += chunk.length;
        if (size > maxBody && req.truncateBody === true) {
          chunks.push(chunk.subarray(0, chunk.length - (size - maxBody)));
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, truncated: true });
          res.destroy();
          request.destroy();
          return;
        }
        if (size > maxBody) {
          res.destroy();
          reject(
            new ConnectorError(
              "permanent",
              "UnexpectedResponse",
              `${where(call)}: response body larger than ${maxBody} bytes`,
              { providerStatusCode: res.statusCode },
            ),
          );
          return;
        }
        chunks.push(chunk);
      });
      res.on("end", () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, truncated: false });
        request.destroy();
      });
      res.on("error", reject);
      if (!req.wantBody) {
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.alloc(0),
          truncated: false,
        });
        res.destroy();
        request.destroy();
      }
    });
    request.on("timeout", () =>
      request.destroy(Object.assign(new Error("socket idle timeout"), { code: "ETIMEDOUT" })),
    );
    request.on("error", reject);
    request.end(req.body);
  });
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  const trimmed = v.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Throws the classed failure unless the status is the expected one (any 2xx when none is). */
export function expectStatus(call: DriverCall, res: HttpResponse, expected?: number): void {
  const status = res.status;
  const ok = expected !== undefined ? status === expected : status >= 200 && status < 300;
  if (ok) return;
  const at = where(call);
  const extra = { providerStatusCode: status };
  if (status === 401 || status === 403)
    throw new ConnectorError(
      "permanent",
      AUTHENTICATION_FAILED,
      `${at}: HTTP ${status} (credentials rejected)`,
      extra,
    );
  if (status === 429) {
    const retryAfterMs = parseRetryAfter(res.headers["retry-after"]);
    throw new ConnectorError("quota_exceeded", "QuotaExceeded", `${at}: HTTP 429 (rate limited)`, {
      ...extra,
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    });
  }
  const want = expected !== undefined ? `expected ${expected}` : "expected 2xx";
  if (status === 408 || status >= 500)
    throw new ConnectorError("transient", "UnexpectedStatus", `${at}: HTTP ${status} (${want})`, extra);
  const note = status >= 300 && status < 400 ? "; redirects are not followed" : "";
  throw new ConnectorError("permanent", "UnexpectedStatus", `${at}: HTTP ${status} (${want}${note})`, extra);
}

function unexpectedResponse(call: DriverCall, res: HttpResponse, what: string): ConnectorError {
  return new ConnectorError(
    "permanent",
    "UnexpectedResponse",
    `${where(call)}: the response is not ${what}`,
    {
      providerStatusCode: res.status,
    },
  );
}

/** The parsed JSON body, or UnexpectedResponse saying what it should have been. */
export function jsonBody(call: DriverCall, res: HttpResponse, what: string): unknown {
  try {
    return JSON.parse(res.body.toString("utf8")) as unknown;
  } catch {
    throw unexpectedResponse(call, res, `${what} (not JSON)`);
  }
}

/** The JSON body as an object carrying a non-empty string id, or UnexpectedResponse saying what it should be. */
export function jsonWithId(call: DriverCall, res: HttpResponse, what: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.body.toString("utf8"));
  } catch {
    parsed = undefined;
  }
  const body =
    typeof parsed === "object" && parsed !== null ? (parsed as Record<string, unknown>) : undefined;
  if (typeof body?.["id"] !== "string" || body["id"] === "")
    throw unexpectedResponse(call, res, `${what} (no id)`);
  return body;
}

export interface JsonRequest {
  method: "GET" | "POST";
  url: URL;
  authorization: string;
  /** Sent as application/json. */
  body?: JsonValue;
  /** The status that counts as success; any 2xx when absent. */
  expectStatus?: number;
  maxBodyBytes?: number;
}

/** One call to a JSON API with a token: the classed failure unless the status is the expected one. */
export async function jsonRequest(call: DriverCall, req: JsonRequest): Promise<HttpResponse> {
  const body = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
  const res = await httpRequest(call, {
    method: req.method,
    url: req.url,
    headers: {
      accept: "application/json",
      ...(body ? { "content-type": "application/json" } : {}),
      authorization: req.authorization,
    },
    ...(body ? { body } : {}),
    wantBody: true,
    ...(req.maxBodyBytes !== undefined ? { maxBodyBytes: req.maxBodyBytes } : {}),
  });
  expectStatus(call, res, req.expectStatus);
  return res;
}

/** The health check of a chat API: GET the token's own user; healthy when it is one (has an id). */
export async function currentUserHealth(
  call: DriverCall,
  url: URL,
  authorization: string,
  what: string,
): Promise<{ providerStatusCode: number }> {
  const expected = call.version.healthProbe.expectStatus;
  const res = await jsonRequest(call, {
    method: "GET",
    url,
    authorization,
    ...(expected !== undefined ? { expectStatus: expected } : {}),
  });
  jsonWithId(call, res, what);
  return { providerStatusCode: res.status };
}
