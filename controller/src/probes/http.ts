// HTTP probe (node:http / node:https): GET the health URL with the configured auth, one
// fresh connection (no agent, no keep-alive, no redirects followed), status and latency.
//
// - http:       GET baseUrl + (config.healthPath ?? healthProbe.path ?? "/"), auth from
//               config.auth {scheme: none|bearer|basic|header} and the `token` credential,
//               extra config.headers.
// - mattermost: GET serverUrl + /api/v4/users/me, Authorization: Bearer <token>; the body
//               must be a user object with an id.
// - discord:    GET apiBase (default https://discord.com/api/v10) + /users/@me,
//               Authorization: Bot <token> (Bearer when the credential tokenType is
//               "Bearer", as an OAuth grant stores it); the body must carry an id.
//
// Expected status: healthProbe.expectStatus, else any 2xx. 401/403 => auth; 429 =>
// quota_exceeded with Retry-After; 408 and 5xx => transient; other statuses => permanent.
import * as http from "node:http";
import * as https from "node:https";
import type { JsonObject, TypeVersion } from "../api/types.ts";
import {
  ProbeFailure,
  displayUrl,
  obj,
  str,
  type ProbeContext,
  type ProbeKindImpl,
  type ProbeSuccess,
  type ProbeTarget,
} from "./common.ts";
import { urlHost } from "./egress.ts";
import { tlsOptions, warnInsecure } from "./tls.ts";

type ApiKind = "http" | "mattermost" | "discord";

const MAX_BODY = 256 * 1024;
const DISCORD_DEFAULT_BASE = "https://discord.com/api/v10";

function joinUrl(base: string, path: string, kind: ApiKind): URL {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new ProbeFailure("permanent", "config", `${kind}: the base URL is not a valid URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:")
    throw new ProbeFailure("permanent", "config", `${kind}: the base URL must be http or https`);
  if (url.username !== "" || url.password !== "")
    throw new ProbeFailure(
      "permanent",
      "config",
      `${kind}: the base URL must not carry credentials (use auth and the token credential)`,
    );
  const rel = new URL(path.startsWith("/") ? path : `/${path}`, "http://placeholder");
  url.pathname = url.pathname.replace(/\/+$/, "") + rel.pathname;
  url.search = rel.search;
  url.hash = "";
  return url;
}

function probeUrl(config: JsonObject, version: TypeVersion, kind: ApiKind): URL {
  const probePath = version.healthProbe.path;
  if (kind === "mattermost") {
    const base = str(config, "serverUrl");
    if (!base) throw new ProbeFailure("permanent", "config", "mattermost: config.serverUrl is missing");
    return joinUrl(base, probePath ?? "/api/v4/users/me", kind);
  }
  if (kind === "discord") {
    return joinUrl(str(config, "apiBase") ?? DISCORD_DEFAULT_BASE, probePath ?? "/users/@me", kind);
  }
  const base = str(config, "baseUrl");
  if (!base) throw new ProbeFailure("permanent", "config", "http: config.baseUrl is missing");
  return joinUrl(base, str(config, "healthPath") ?? probePath ?? "/", kind);
}

function targetFor(kind: ApiKind) {
  return (config: JsonObject, version: TypeVersion): ProbeTarget => {
    const url = probeUrl(config, version, kind);
    const port = url.port !== "" ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
    return { host: urlHost(url), port, display: `GET ${displayUrl(url)}` };
  };
}

function authHeaders(ctx: ProbeContext, kind: ApiKind): Record<string, string> {
  const token = ctx.input.credentials?.["token"];
  const missing = () =>
    new ProbeFailure("permanent", "auth", `${kind} ${ctx.target.display}: the token credential is required`);
  if (kind === "mattermost") {
    if (!token) throw missing();
    return { authorization: `Bearer ${token}` };
  }
  if (kind === "discord") {
    if (!token) throw missing();
    const bearer = (ctx.input.credentials?.["tokenType"] ?? "").toLowerCase() === "bearer";
    return { authorization: `${bearer ? "Bearer" : "Bot"} ${token}` };
  }
  const auth = obj(ctx.input.config, "auth");
  const scheme = (auth && str(auth, "scheme")) ?? "none";
  if (scheme === "none") return {};
  if (!token) throw missing();
  if (scheme === "bearer") return { authorization: `Bearer ${token}` };
  if (scheme === "basic") {
    const username = (auth && str(auth, "username")) ?? "";
    if (username.includes(":"))
      throw new ProbeFailure(
        "permanent",
        "config",
        `http ${ctx.target.display}: auth.username must not contain ':'`,
      );
    return { authorization: `Basic ${Buffer.from(`${username}:${token}`).toString("base64")}` };
  }
  if (scheme === "header") {
    const name = auth && str(auth, "headerName");
    if (!name)
      throw new ProbeFailure("permanent", "config", `http ${ctx.target.display}: auth.headerName is missing`);
    return { [name.toLowerCase()]: token };
  }
  throw new ProbeFailure(
    "permanent",
    "config",
    `http ${ctx.target.display}: unknown auth scheme ${JSON.stringify(scheme)}`,
  );
}

function configHeaders(config: JsonObject): Record<string, string> {
  const headers = obj(config, "headers");
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) if (typeof v === "string") out[k.toLowerCase()] = v;
  return out;
}

interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function get(
  ctx: ProbeContext,
  url: URL,
  headers: Record<string, string>,
  wantBody: boolean,
): Promise<HttpResponse> {
  const isHttps = url.protocol === "https:";
  const options: https.RequestOptions = {
    method: "GET",
    protocol: url.protocol,
    hostname: ctx.target.host,
    port: ctx.target.port,
    path: `${url.pathname}${url.search}`,
    headers: { ...headers, host: url.host, connection: "close" },
    agent: false,
    signal: ctx.signal,
    timeout: ctx.timeoutMs,
    maxHeaderSize: 64 * 1024,
  };
  if (isHttps) Object.assign(options, tlsOptions(ctx));
  return new Promise<HttpResponse>((resolve, reject) => {
    const req = (isHttps ? https : http).request(options, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        if (!wantBody) return;
        size += chunk.length;
        if (size > MAX_BODY) {
          res.destroy();
          reject(
            new ProbeFailure(
              "permanent",
              "shape",
              `${ctx.target.display}: response body larger than ${MAX_BODY} bytes`,
            ),
          );
          return;
        }
        chunks.push(chunk);
      });
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
        req.destroy();
      });
      res.on("error", reject);
      if (!wantBody) {
        // Only the status matters: answer now and hang up.
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.alloc(0) });
        res.destroy();
        req.destroy();
      }
    });
    req.on("timeout", () =>
      req.destroy(Object.assign(new Error("socket idle timeout"), { code: "ETIMEDOUT" })),
    );
    req.on("error", reject);
    req.end();
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

function statusFailure(ctx: ProbeContext, res: HttpResponse, expected: number | undefined): ProbeFailure {
  const status = res.status;
  const where = `${ctx.version.healthProbe.kind} ${ctx.target.display}`;
  const extra = { providerStatusCode: status };
  if (status === 401 || status === 403)
    return new ProbeFailure("permanent", "auth", `${where}: HTTP ${status} (credentials rejected)`, extra);
  if (status === 429) {
    const retryAfterMs = parseRetryAfter(res.headers["retry-after"]);
    return new ProbeFailure("quota_exceeded", "quota", `${where}: HTTP 429 (rate limited)`, {
      ...extra,
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    });
  }
  const want = expected !== undefined ? `expected ${expected}` : "expected 2xx";
  if (status === 408 || status >= 500)
    return new ProbeFailure("transient", "status", `${where}: HTTP ${status} (${want})`, extra);
  if (status >= 300 && status < 400)
    return new ProbeFailure(
      "permanent",
      "status",
      `${where}: HTTP ${status} (${want}; redirects are not followed)`,
      extra,
    );
  return new ProbeFailure("permanent", "status", `${where}: HTTP ${status} (${want})`, extra);
}

function checkShape(ctx: ProbeContext, kind: ApiKind, body: Buffer): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    parsed = undefined;
  }
  const id = typeof parsed === "object" && parsed !== null ? (parsed as { id?: unknown }).id : undefined;
  if (typeof id !== "string" || id === "") {
    const what = kind === "mattermost" ? "a Mattermost user" : "a Discord user";
    throw new ProbeFailure(
      "permanent",
      "shape",
      `${kind} ${ctx.target.display}: the response is not ${what} (no id)`,
      {
        providerStatusCode: 200,
      },
    );
  }
}

function runFor(kind: ApiKind) {
  return async (ctx: ProbeContext): Promise<ProbeSuccess> => {
    const url = probeUrl(ctx.input.config, ctx.version, kind);
    const headers: Record<string, string> = {
      ...(kind === "http" ? configHeaders(ctx.input.config) : {}),
      "user-agent": "connector-controller-probe",
      accept: kind === "http" ? "*/*" : "application/json",
      ...authHeaders(ctx, kind),
    };
    if (url.protocol === "http:" && headers["authorization"] !== undefined)
      warnInsecure(ctx, "credentials sent over plain http");
    const res = await get(ctx, url, headers, kind !== "http");
    const expected = ctx.version.healthProbe.expectStatus;
    const ok = expected !== undefined ? res.status === expected : res.status >= 200 && res.status < 300;
    if (!ok) throw statusFailure(ctx, res, expected);
    if (kind !== "http") checkShape(ctx, kind, res.body);
    return { providerStatusCode: res.status };
  };
}

export const httpProbe: ProbeKindImpl = { target: targetFor("http"), run: runFor("http") };
export const mattermostProbe: ProbeKindImpl = { target: targetFor("mattermost"), run: runFor("mattermost") };
export const discordProbe: ProbeKindImpl = { target: targetFor("discord"), run: runFor("discord") };
