// Vault's answers and transport failures as ConnectorErrors (DESIGN §6 "Errors"): the class
// comes from the status code, the message keeps the status and Vault's first error only,
// every token and credential of the client is scrubbed out of it, and nothing of the
// request (headers, body, the library's error) is kept, not even as `cause`.
import { ConnectorError } from "../api/errors.ts";

/** Which call failed, for messages and for classifying 404. */
export type VaultOperation = "login" | "read" | "write" | "renew" | "revoke" | "health" | "lookup";

/** A finished HTTP exchange that Vault answered with an error status. */
export interface VaultErrorResponse {
  statusCode: number;
  body: unknown;
  /** From a 429's Retry-After header. */
  retryAfterMs?: number | undefined;
}

/** Vault's JSON error body; a 404 of a KV v2 read carries the version's metadata. */
interface VaultErrorBody {
  errors?: unknown[];
  data?: { metadata?: KvMetadata | null } | null;
}

export interface KvMetadata {
  version?: number;
  deletion_time?: string;
  destroyed?: boolean;
}

/** Words for undici's codes, whose messages alone ("other side closed") say little. */
const TRANSPORT_CODES: Record<string, string> = {
  UND_ERR_SOCKET: "socket closed by the server:",
  UND_ERR_CONNECT_TIMEOUT: "connect timed out:",
  UND_ERR_HEADERS_TIMEOUT: "timed out waiting for the response:",
  UND_ERR_BODY_TIMEOUT: "timed out reading the response:",
  UND_ERR_CLOSED: "client closed:",
  UND_ERR_DESTROYED: "client closed:",
};

/** Removes every sensitive string from `text`, and anything that looks like a Vault token. */
export function scrub(text: string, sensitive: Iterable<string> = []): string {
  let out = text;
  for (const s of sensitive) if (s && s.length >= 4) out = out.split(s).join("[REDACTED]");
  return out
    .replace(/\b(hv[sbr]|s)\.[A-Za-z0-9_-]{20,}/g, "[REDACTED]")
    .replace(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*/g, "[REDACTED]");
}

/** A KV v2 version that was deleted or destroyed (its metadata says so). */
export function isDeleted(meta: KvMetadata | null | undefined): meta is KvMetadata {
  return !!meta && (meta.destroyed === true || (meta.deletion_time ?? "") !== "");
}

export function deletedError(path: string, version: number | undefined): ConnectorError {
  return new ConnectorError(
    "permanent",
    "SecretDeleted",
    `the secret at ${path}${version ? ` (version ${version})` : ""} was deleted or destroyed`,
    { providerStatusCode: 404 },
  );
}

/** Seconds or an HTTP date, in ms from now; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  const secs = Number(v);
  if (Number.isFinite(secs) && secs >= 0) return Math.round(secs * 1000);
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

/**
 * Anything a Vault call failed with => a ConnectorError: `{ response }` (an error status)
 * by its status code, a transport error (with a `code`) as transient, anything else as a
 * permanent VaultClientError.
 */
export function wrapVaultError(
  err: unknown,
  op: VaultOperation,
  what: string,
  sensitive: Iterable<string> = [],
): ConnectorError {
  if (err instanceof ConnectorError) return err;
  const clean = (s: string): string => scrub(s, sensitive).slice(0, 300);
  const response = (err as { response?: Partial<VaultErrorResponse> } | undefined)?.response;
  if (typeof response?.statusCode === "number")
    return statusError(response as VaultErrorResponse, op, what, clean);

  const e = err as { message?: unknown; code?: unknown; name?: unknown } | undefined;
  const message = typeof e?.message === "string" ? e.message : "";
  const code = typeof e?.code === "string" ? e.code : e?.name === "AbortError" ? "ABORT_ERR" : undefined;
  if (code === "ABORT_ERR") return new ConnectorError("transient", "Aborted", `Vault ${what} was aborted`);
  if (code)
    return new ConnectorError(
      "transient",
      "VaultUnavailable",
      clean(
        `Vault ${what} failed: ${code} ${TRANSPORT_CODES[code] ?? ""} ${message}`.replace(/\s+/g, " ").trim(),
      ),
    );
  return new ConnectorError(
    "permanent",
    "VaultClientError",
    clean(`Vault ${what}: ${message || "invalid request"}`),
  );
}

function statusError(
  response: VaultErrorResponse,
  op: VaultOperation,
  what: string,
  clean: (s: string) => string,
): ConnectorError {
  const status = response.statusCode;
  const body = (response.body ?? undefined) as VaultErrorBody | undefined;
  const first = Array.isArray(body?.errors) && body.errors.length > 0 ? String(body.errors[0]) : "";
  const msg = clean(`Vault ${what}: ${status}${first ? ` ${first}` : ""}`);
  const extra = { providerStatusCode: status };
  switch (status) {
    case 400:
      return new ConnectorError("validation_error", "InvalidSecretRef", msg, extra);
    case 401:
    case 403:
      return new ConnectorError("policy_denied", "PermissionDenied", msg, extra);
    case 404: {
      if (op !== "read") return new ConnectorError("permanent", "VaultNotFound", msg, extra);
      const meta = body?.data?.metadata;
      if (isDeleted(meta))
        return new ConnectorError(
          "permanent",
          "SecretDeleted",
          clean(
            `Vault ${what}: 404 the secret${meta.version ? ` version ${meta.version}` : ""} was ${meta.destroyed ? "destroyed" : "deleted"}`,
          ),
          extra,
        );
      return new ConnectorError(
        "permanent",
        "SecretNotFound",
        clean(`Vault ${what}: 404 secret not found`),
        extra,
      );
    }
    case 429:
      return new ConnectorError("quota_exceeded", "QuotaExceeded", msg, {
        ...extra,
        retryAfterMs: response.retryAfterMs ?? 1_000,
      });
    case 500:
    case 502:
    case 503:
    case 504:
      return new ConnectorError(
        "transient",
        "VaultUnavailable",
        status === 503 && /sealed/i.test(first) ? clean(`Vault ${what}: 503 Vault is sealed`) : msg,
        extra,
      );
    case 412:
      // A performance standby has not yet caught up with a write (X-Vault-Index): retry.
      return new ConnectorError("transient", "VaultUnavailable", msg, extra);
    default:
      return new ConnectorError("permanent", "VaultError", msg, extra);
  }
}
