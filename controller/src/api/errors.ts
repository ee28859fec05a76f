// Every failure carries a class (spec §5.1); the class, not the message, decides what happens
// next: transient and quota_exceeded are retried with backoff, the others are terminal for
// what caused them (a generation of a spec, an invocation's input) until it changes.
import type { Problem } from "./problems.ts";
import type { ErrorClass } from "./types.ts";

export class ConnectorError extends Error {
  readonly errorClass: ErrorClass;
  /** A one-word CamelCase reason for conditions, events and problem types (InvalidConfig, SecretNotFound...). */
  readonly reason: string;
  /** Field paths and what was expected, for validation errors. */
  readonly problems: Problem[];
  /** For quota_exceeded: the provider's Retry-After. */
  readonly retryAfterMs: number | undefined;
  /** The provider's status code when its protocol has one (HTTP status, SMTP reply code). */
  readonly providerStatusCode: number | undefined;

  constructor(
    errorClass: ErrorClass,
    reason: string,
    message: string,
    extra: { problems?: Problem[]; retryAfterMs?: number; providerStatusCode?: number; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = "ConnectorError";
    this.errorClass = errorClass;
    this.reason = reason;
    this.problems = extra.problems ?? [];
    this.retryAfterMs = extra.retryAfterMs;
    this.providerStatusCode = extra.providerStatusCode;
  }
}

export function isRetryable(c: ErrorClass): boolean {
  return c === "transient" || c === "quota_exceeded";
}

/**
 * Marks a failure that must not be retried by the work queue (controller-runtime's
 * TerminalError): the reconciler has already written why to status; only a change to the
 * object brings it back.
 */
export class TerminalError extends Error {
  readonly error: ConnectorError;
  constructor(error: ConnectorError) {
    super(error.message, { cause: error });
    this.name = "TerminalError";
    this.error = error;
  }
}

export function terminal(error: ConnectorError): TerminalError {
  return new TerminalError(error);
}

/** Anything thrown that is not ours is transient: an unknown failure should be retried, not stall. */
export function classify(err: unknown): ConnectorError {
  if (err instanceof ConnectorError) return err;
  if (err instanceof TerminalError) return err.error;
  return new ConnectorError("transient", "InternalError", errorChainMessage(err), { cause: err });
}

/**
 * An error's message followed by its causes' (with their codes): "fetch failed: connect
 * ECONNREFUSED 127.0.0.1:6443". Bounded; never the causes' other fields.
 */
export function errorChainMessage(err: unknown): string {
  const parts: string[] = [];
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (e !== undefined && e !== null && parts.length < 4 && !seen.has(e)) {
    seen.add(e);
    const message = e instanceof Error ? e.message : String(e);
    const code = (e as { code?: unknown }).code;
    const part = typeof code === "string" && !message.includes(code) ? `${message} (${code})` : message;
    if (part && !parts.some((p) => p.includes(part))) parts.push(part);
    e = typeof e === "object" ? (e as { cause?: unknown }).cause : undefined;
  }
  return parts.join(": ").slice(0, 500) || "unknown error";
}

/** Throws a transient ConnectorError naming `what` when `signal` has fired (a deadline or a stop). */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (!signal?.aborted) return;
  const timedOut = (signal.reason as { name?: string } | undefined)?.name === "TimeoutError";
  throw new ConnectorError(
    "transient",
    timedOut ? "DeadlineExceeded" : "Aborted",
    `${what}: ${timedOut ? "the deadline passed" : "aborted"}`,
  );
}
