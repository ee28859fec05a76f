// One execution of an operation, shared by the synchronous path and the job worker: the
// breaker is consulted, credentials resolved for this call only, the driver called (with
// retries by failure class when the caller asks for them), the breaker told how it went, and
// the result checked against the outputSchema, redacted and cut to its size.
import pRetry, { AbortError } from "p-retry";
import { ConnectorError, classify } from "../api/errors.ts";
import type { Logger } from "../api/logger.ts";
import type { InstanceRow } from "../api/model.ts";
import type {
  Connector,
  ConnectorType,
  JsonObject,
  JsonValue,
  Operation,
  TypeVersion,
} from "../api/types.ts";
import { byteSize, OperationSchemas, redact, truncate } from "./payload.ts";
import type {
  BreakerSettings,
  BreakerState,
  BreakerStore,
  CredentialSource,
  OperationRunner,
} from "./ports.ts";
import type { RetryBudget } from "./retryBudget.ts";

export interface ExecuteDeps {
  run: OperationRunner;
  credentials: CredentialSource;
  breakers: BreakerStore;
  breakerSettings: BreakerSettings;
  schemas: OperationSchemas;
  retryBudget: RetryBudget;
  /** The global cap on any result (spec §16), below each operation's own maxPayloadBytes. */
  maxResultBytes: number;
  /** The global cap on retries of one call, whatever an operation's policy says. */
  maxRetries: number;
  onBreakerTrip?: (type: string) => void;
  onRetry?: (type: string, operation: string) => void;
  /** A limit refused a call: ours (instance, user, project) or the provider's own 429 ("provider"). */
  onQuotaExceeded?: (scope: string) => void;
}

export interface Execution {
  connector: Connector;
  type: ConnectorType;
  version: TypeVersion;
  op: Operation;
  row: InstanceRow;
  input: JsonObject;
  signal: AbortSignal;
  log: Logger;
  /** sync: retry per the operation's policy here; async: one attempt (the job engine retries). */
  retries: "policy" | "none";
  /** What admission found the breaker to be: closed, or half-open with this call as the trial. */
  breaker: BreakerState;
  /**
   * Told of each attempt as it ends: its number (0 the first, 1 the first retry…) and the
   * provider's status when it answered, so that a call that fails (retries spent, a result
   * refused) is audited with what happened too.
   */
  onAttempt?: (retryCount: number, providerStatusCode: number | undefined) => void;
}

export interface Executed {
  data: JsonValue;
  warnings: string[];
  redactionsApplied: string[];
  truncated: boolean;
  providerStatusCode: number | null;
  retryCount: number;
}

/** Failures that say the provider is unwell (counted by the breaker), not that the request was wrong. */
export function countsAgainstBreaker(err: ConnectorError): boolean {
  return err.errorClass === "transient" && err.reason !== "Aborted";
}

/** Whether the operation's policy retries this failure. */
export function retryable(err: ConnectorError, op: Operation): boolean {
  if (err.errorClass !== "transient" && err.errorClass !== "quota_exceeded") return false;
  if (err.reason === "Aborted") return false;
  const codes = op.retryPolicy?.retryableStatusCodes ?? [];
  return err.providerStatusCode === undefined || codes.length === 0 || codes.includes(err.providerStatusCode);
}

export async function execute(d: ExecuteDeps, x: Execution): Promise<Executed> {
  const { row, op, breaker } = x;
  const credentials = await d.credentials.resolve(x.connector, x.version, row, x.signal);
  const policy = op.retryPolicy ?? {};
  let attempts = 0;
  const attempt = async (): Promise<Awaited<ReturnType<OperationRunner>>> => {
    attempts++;
    try {
      const result = await d.run(
        op.name,
        x.input,
        {
          type: x.type,
          typeVersion: x.version.version,
          config: row.config,
          credentials,
          timeoutMs: op.maxTimeoutMs,
          signal: x.signal,
        },
        x.log,
      );
      x.onAttempt?.(attempts - 1, result.providerStatusCode);
      return result;
    } catch (err) {
      // Past the deadline the driver reports its own abort; the provider was too slow, and that counts.
      const e = x.signal.aborted ? deadline(x.signal, op) : classify(err);
      x.onAttempt?.(attempts - 1, e.providerStatusCode);
      if (e.errorClass === "quota_exceeded") d.onQuotaExceeded?.("provider");
      if (countsAgainstBreaker(e) && (await d.breakers.failure(row.id, d.breakerSettings)))
        d.onBreakerTrip?.(x.type.metadata.name);
      // Anything not worth retrying leaves p-retry at once, as itself.
      if (x.retries === "none" || !retryable(e, op)) throw new AbortError(e);
      throw e;
    }
  };
  let result: Awaited<ReturnType<OperationRunner>>;
  try {
    result = await pRetry(attempt, {
      retries: x.retries === "none" ? 0 : Math.min(policy.maxRetries ?? 0, d.maxRetries),
      factor: 2,
      minTimeout: policy.initialDelayMs ?? 250,
      maxTimeout: policy.maxDelayMs ?? 10_000,
      randomize: true,
      signal: x.signal,
      shouldRetry: () => d.retryBudget.withdraw(),
      onFailedAttempt: async ({ error }) => {
        d.onRetry?.(x.type.metadata.name, op.name);
        // A provider's 429 says when: wait at least that long (the deadline still bounds it).
        const retryAfter = error instanceof ConnectorError ? error.retryAfterMs : undefined;
        if (retryAfter)
          await new Promise((r) => setTimeout(r, Math.min(retryAfter, op.maxTimeoutMs)).unref());
      },
    });
  } catch (err) {
    throw x.signal.aborted ? deadline(x.signal, op) : classify(err);
  } finally {
    d.retryBudget.deposit();
  }
  if (breaker.phase !== "closed" || breaker.failures > 0) await d.breakers.success(row.id);
  return shape(d, x, result, attempts - 1);
}

/** The call ran out of time (or its caller went away). */
function deadline(signal: AbortSignal, op: Operation): ConnectorError {
  const timedOut = (signal.reason as { name?: string } | undefined)?.name === "TimeoutError";
  return timedOut
    ? new ConnectorError(
        "transient",
        "DeadlineExceeded",
        `${op.name} did not finish within ${op.maxTimeoutMs} ms`,
      )
    : new ConnectorError("transient", "Aborted", `${op.name} was aborted`);
}

function shape(
  d: ExecuteDeps,
  x: Execution,
  result: Awaited<ReturnType<OperationRunner>>,
  retryCount: number,
): Executed {
  d.schemas.checkOutput(x.type, x.version, x.op, result.data);
  const redacted = redact(result.data, x.op.redact);
  const cap = Math.min(x.op.maxPayloadBytes ?? d.maxResultBytes, d.maxResultBytes);
  const fits =
    byteSize(redacted.data) <= cap
      ? { data: redacted.data, truncated: false }
      : x.op.onOversize === "refuse"
        ? undefined
        : truncate(redacted.data, cap);
  if (!fits)
    throw new ConnectorError(
      "permanent",
      "ResultTooLarge",
      `the result of ${x.op.name} is larger than ${cap} bytes${x.op.onOversize === "refuse" ? " and the operation refuses oversize results" : " even when cut"}`,
    );
  return {
    data: fits.data,
    warnings: result.warnings ?? [],
    redactionsApplied: redacted.applied,
    truncated: fits.truncated,
    providerStatusCode: result.providerStatusCode ?? null,
    retryCount,
  };
}
