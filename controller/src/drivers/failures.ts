// What every driver's failures share: naming where a call went, reading a library error's
// chain of causes, the classification of network and TLS errors that all protocols meet,
// and scrubbing credential values out of anything that leaves a call.
import { ConnectorError } from "../api/errors.ts";
import { AUTHENTICATION_FAILED } from "../api/model.ts";
import type { JsonValue } from "../api/types.ts";
import type { DriverCall } from "./driver.ts";

/** How messages name a call: the driver's kind and its target (`imap 127.0.0.1:993`). */
export function where(call: Pick<DriverCall, "version" | "target">): string {
  return `${call.version.healthProbe.kind} ${call.target.display}`;
}

/** The named credentials, or a permanent AuthenticationFailed naming the missing keys (never values). */
export function requireCredentials<K extends string>(
  call: DriverCall,
  keys: readonly K[],
): Record<K, string> {
  const out = {} as Record<K, string>;
  const missing: K[] = [];
  for (const key of keys) {
    const value = call.credentials?.[key];
    if (value === undefined || value === "") missing.push(key);
    else out[key] = value;
  }
  if (missing.length > 0) {
    const what =
      missing.length === 1
        ? `the ${missing[0]} credential is required`
        : `credentials ${missing.join(" and ")} are required`;
    throw new ConnectorError("permanent", AUTHENTICATION_FAILED, `${where(call)}: ${what}`);
  }
  return out;
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

/** A stable name for an unexpected error: its code, else its class name. */
export function errorName(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && /^[A-Za-z0-9_.-]{1,40}$/.test(code)) return code;
  return err instanceof Error ? err.name : typeof err;
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
export function classifyNetwork(err: unknown, call: DriverCall): ConnectorError | undefined {
  const codes = errorCodes(err);
  const at = where(call);
  for (const code of codes) {
    if (TLS_VERIFY_CODES.has(code))
      return new ConnectorError(
        "transient",
        "TlsFailed",
        `${at}: TLS certificate verification failed (${code})`,
      );
  }
  for (const code of codes) {
    if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EAI_NONAME" || code === "EAI_FAIL")
      return new ConnectorError("transient", "DnsFailed", `${at}: host name could not be resolved (${code})`);
    const text = NETWORK_CODES[code];
    if (text !== undefined)
      return new ConnectorError("transient", "ConnectionFailed", `${at}: ${text} (${code})`);
    if (code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_") || code === "EPROTO")
      return new ConnectorError("transient", "TlsFailed", `${at}: TLS handshake failed (${code})`);
  }
  return undefined;
}

// --- secrets in what leaves a call -----------------------------------------------------------

/** Credential keys that name someone rather than prove it; all others are secret. */
const NOT_SECRET = new Set(["username", "user", "tokenType"]);

function secretForms(credentials: Record<string, string> | undefined): string[] {
  const forms = new Set<string>();
  for (const [key, value] of Object.entries(credentials ?? {})) {
    if (NOT_SECRET.has(key) || typeof value !== "string" || value.length < 3) continue;
    forms.add(value).add(encodeURIComponent(value)).add(Buffer.from(value).toString("base64"));
  }
  return [...forms];
}

function cleaner(credentials: Record<string, string> | undefined): (text: string) => string {
  const forms = secretForms(credentials);
  return (text) => forms.reduce((out, form) => out.split(form).join("[REDACTED]"), text);
}

/** Replaces every secret credential value (plain, URL-encoded, base64) in text. */
export function scrub(text: string, credentials: Record<string, string> | undefined): string {
  return cleaner(credentials)(text);
}

/** The same for every string (keys included) of a JSON value. */
export function scrubJson(value: JsonValue, credentials: Record<string, string> | undefined): JsonValue {
  const clean = cleaner(credentials);
  const walk = (v: JsonValue): JsonValue => {
    if (typeof v === "string") return clean(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === "object")
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [clean(k), walk(x)]));
    return v;
  };
  return walk(value);
}

/** The same error with every message scrubbed, and without its cause (a library's error may hold the config). */
export function scrubError(
  err: ConnectorError,
  credentials: Record<string, string> | undefined,
): ConnectorError {
  return new ConnectorError(err.errorClass, err.reason, scrub(err.message, credentials), {
    problems: err.problems.map((p) => ({ path: p.path, message: scrub(p.message, credentials) })),
    ...(err.retryAfterMs !== undefined ? { retryAfterMs: err.retryAfterMs } : {}),
    ...(err.providerStatusCode !== undefined ? { providerStatusCode: err.providerStatusCode } : {}),
  });
}
