import type { ErrorClass } from "../api/types.ts";
import type { Problem } from "../api/problems.ts";

/**
 * Every failure the reconciler meets carries a class; the class, not the message, decides
 * what happens next: transient and quota_exceeded are retried by the queue, the others
 * stall the generation until the spec changes.
 */
export class ConnectorError extends Error {
  readonly errorClass: ErrorClass;
  /** A one-word CamelCase reason for conditions and events (InvalidConfig, SecretNotFound...). */
  readonly reason: string;
  readonly problems: Problem[];
  /** For quota_exceeded: the provider's Retry-After. */
  readonly retryAfterMs: number | undefined;
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

/** Anything thrown that is not ours is transient: an unknown failure should be retried, not stall. */
export function classify(err: unknown): ConnectorError {
  if (err instanceof ConnectorError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new ConnectorError("transient", "InternalError", message, { cause: err });
}
