// What every probe shares: the context it runs in, the failure it throws, and the
// classification of network and TLS errors that all protocols meet.
import type { ErrorClass, JsonObject, JsonValue, TypeVersion } from "../api/types.ts";
import type { Logger } from "../api/logger.ts";
import type { ProbeInput } from "../api/model.ts";

export interface ProbeTarget {
  /** The host exactly as it will be handed to the client library (checked against the allowlist). */
  host: string;
  port: number;
  /** How the target is named in messages: host:port, or a URL without userinfo and query. */
  display: string;
}

export interface ProbeContext {
  input: ProbeInput;
  version: TypeVersion;
  typeName: string;
  target: ProbeTarget;
  log: Logger;
  /** Aborted at the deadline (timeoutMs) or when the caller's signal aborts. */
  signal: AbortSignal;
  timeoutMs: number;
}

export interface ProbeSuccess {
  providerStatusCode?: number;
}

export interface ProbeKindImpl {
  /** Where the probe will connect, from the config alone (no resolution). Throws ProbeFailure on bad config. */
  target(config: JsonObject, version: TypeVersion): ProbeTarget;
  /** Runs the check. Must release every socket when ctx.signal aborts, and before it settles. */
  run(ctx: ProbeContext): Promise<ProbeSuccess>;
  /** Protocol-specific classification; undefined falls back to the network/TLS rules. */
  classify?(err: unknown, ctx: ProbeContext): ProbeFailure | undefined;
}

/** reason values: auth, egress, timeout, aborted, connection, dns, tls, config, protocol, status, quota, mailbox, shape. */
export class ProbeFailure extends Error {
  readonly errorClass: ErrorClass;
  readonly reason: string;
  readonly retryAfterMs: number | undefined;
  readonly providerStatusCode: number | undefined;

  constructor(
    errorClass: ErrorClass,
    reason: string,
    message: string,
    extra: { retryAfterMs?: number; providerStatusCode?: number } = {},
  ) {
    super(message);
    this.name = "ProbeFailure";
    this.errorClass = errorClass;
    this.reason = reason;
    this.retryAfterMs = extra.retryAfterMs;
    this.providerStatusCode = extra.providerStatusCode;
  }
}

// --- config accessors ---------------------------------------------------------------------

export function str(config: JsonObject, key: string): string | undefined {
  const v = config[key];
  return typeof v === "string" ? v : undefined;
}

export function bool(config: JsonObject, key: string): boolean | undefined {
  const v = config[key];
  return typeof v === "boolean" ? v : undefined;
}

export function int(config: JsonObject, key: string): number | undefined {
  const v = config[key];
  return typeof v === "number" && Number.isInteger(v) ? v : undefined;
}

export function obj(config: JsonObject, key: string): JsonObject | undefined {
  const v: JsonValue | undefined = config[key];
  return typeof v === "object" && v !== null && !Array.isArray(v) ? v : undefined;
}

export function requireHost(config: JsonObject, kind: string): string {
  const host = str(config, "host");
  if (host === undefined || host === "")
    throw new ProbeFailure("permanent", "config", `${kind}: config.host is missing`);
  return host;
}

export function requirePort(port: number | undefined, fallback: number, kind: string): number {
  const p = port ?? fallback;
  if (!Number.isInteger(p) || p < 1 || p > 65535)
    throw new ProbeFailure("permanent", "config", `${kind}: config.port ${String(p)} is not a valid port`);
  return p;
}

export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

// --- error inspection ---------------------------------------------------------------------

/** The error and its causes, outermost first (bounded, cycles cut). */
export function errorChain(err: unknown): unknown[] {
  const out: unknown[] = [];
  let e: unknown = err;
  while (e !== undefined && e !== null && out.length < 6 && !out.includes(e)) {
    out.push(e);
    e = typeof e === "object" ? (e as { cause?: unknown }).cause : undefined;
  }
  return out;
}

function field(e: unknown, name: string): unknown {
  return typeof e === "object" && e !== null ? (e as Record<string, unknown>)[name] : undefined;
}

/** Every string `code` in the chain (Node, library and SQLSTATE codes). */
export function errorCodes(err: unknown): string[] {
  const codes: string[] = [];
  for (const e of errorChain(err)) {
    for (const name of ["code", "originalCode"]) {
      const c = field(e, name);
      if (typeof c === "string" && c !== "") codes.push(c);
    }
  }
  return codes;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const TLS_VERIFY_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_CHAIN_TOO_LONG",
  "INVALID_CA",
  "HOSTNAME_MISMATCH",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset by the server",
  ECONNABORTED: "connection aborted",
  EPIPE: "connection closed by the server",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  EHOSTDOWN: "host down",
  ENETDOWN: "network down",
  EADDRNOTAVAIL: "address not available",
  ETIMEDOUT: "connection timed out",
  UND_ERR_SOCKET: "connection closed by the server",
};

/**
 * The classification every protocol shares: DNS, refused/reset connections, timeouts and
 * TLS failures are transient (the breaker decides when to give up); the message names the
 * Node code, never the library's free text (which may carry addresses or ids).
 */
export function classifyNetwork(err: unknown, ctx: ProbeContext): ProbeFailure | undefined {
  const codes = errorCodes(err);
  const where = `${ctx.version.healthProbe.kind} ${ctx.target.display}`;
  for (const code of codes) {
    if (TLS_VERIFY_CODES.has(code))
      return new ProbeFailure("transient", "tls", `${where}: TLS certificate verification failed (${code})`);
  }
  for (const code of codes) {
    if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EAI_NONAME" || code === "EAI_FAIL")
      return new ProbeFailure("transient", "dns", `${where}: host name could not be resolved (${code})`);
    const text = NETWORK_CODES[code];
    if (text !== undefined) return new ProbeFailure("transient", "connection", `${where}: ${text} (${code})`);
    if (code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_") || code === "EPROTO")
      return new ProbeFailure("transient", "tls", `${where}: TLS handshake failed (${code})`);
  }
  return undefined;
}

// --- secrets in messages --------------------------------------------------------------------

/** Credential keys that name someone rather than prove it; all others are secret. */
const NOT_SECRET = new Set(["username", "user", "tokenType"]);

/** Replaces every secret credential value (plain, URL-encoded, base64) in text. */
export function scrub(text: string, credentials: Record<string, string> | undefined): string {
  let out = text;
  for (const [key, value] of Object.entries(credentials ?? {})) {
    if (NOT_SECRET.has(key) || typeof value !== "string" || value.length < 3) continue;
    for (const form of new Set([value, encodeURIComponent(value), Buffer.from(value).toString("base64")])) {
      out = out.split(form).join("[REDACTED]");
    }
  }
  return out;
}

/** A URL for messages: no userinfo, no query, no fragment. */
export function displayUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}
