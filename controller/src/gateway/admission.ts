// Admission (spec §6, §14): the replica's own guard on calls in flight first, then the
// limits that hold across replicas — the instance's, the caller's and the project's rate
// buckets (all or nothing) and the instance's maxParallelInvocations, with its declared
// backpressure (reject, or wait in a bounded queue).
import { ConnectorError } from "../api/errors.ts";
import type { ExecutionMode, Principal } from "../api/invocation.ts";
import type { InstanceRow } from "../api/model.ts";
import type { Operation, RateLimit } from "../api/types.ts";
import type { Admission, BreakerSettings, BreakerState, Limiter, RateBucket } from "./ports.ts";

/** A slot is held this much longer than the operation may run, before it counts as abandoned. */
const LEASE_MARGIN_MS = 30_000;

/** The replica's global concurrency guard. */
export class InFlight {
  readonly max: number;
  #current = 0;
  constructor(max: number) {
    this.max = max;
  }
  get current(): number {
    return this.#current;
  }
  tryEnter(): boolean {
    if (this.#current >= this.max) return false;
    this.#current++;
    return true;
  }
  leave(): void {
    this.#current--;
  }
}

export interface AdmissionDeps {
  limiter: Limiter;
  breakerSettings: BreakerSettings;
  inFlight: InFlight;
  /** Per caller and per project, as the gateway is configured (absent: no such limit). */
  perUser?: RateLimit;
  perProject?: RateLimit;
  onQuotaExceeded?: (scope: string) => void;
}

export interface AdmissionSubject {
  principal: Principal;
  row: InstanceRow;
  op: Operation;
  mode: ExecutionMode;
}

export function bucketsFor(d: AdmissionDeps, s: AdmissionSubject): RateBucket[] {
  const buckets: RateBucket[] = [];
  const rate = s.row.rateLimitPolicy;
  if (rate) buckets.push({ key: `instance:${s.row.id}`, ...rate });
  if (d.perUser) buckets.push({ key: `user:${s.principal.user}`, ...d.perUser });
  if (d.perProject && s.row.projectId) buckets.push({ key: `project:${s.row.projectId}`, ...d.perProject });
  return buckets;
}

/**
 * Runs `work` once admitted, holding a slot (for sync calls) until it is done. A sync call
 * also passes the instance's breaker in the same round trip and hands `work` what it said.
 */
export async function admit<T>(
  d: AdmissionDeps,
  s: AdmissionSubject,
  signal: AbortSignal,
  work: (breaker: BreakerState) => Promise<T>,
): Promise<T> {
  if (!d.inFlight.tryEnter())
    throw new ConnectorError(
      "transient",
      "Busy",
      `this gateway replica already runs ${d.inFlight.max} calls`,
      {
        retryAfterMs: 1000,
      },
    );
  try {
    const limits = s.row.limits ?? {};
    const admission = await d.limiter.admit(
      {
        instanceId: s.row.id,
        buckets: bucketsFor(d, s),
        // A job takes its slot when it runs, on whichever replica runs it.
        ...(s.mode === "sync" && limits.maxParallelInvocations
          ? { maxParallel: limits.maxParallelInvocations }
          : {}),
        backpressure: limits.backpressure ?? "reject",
        queueDepth: limits.queueDepth ?? 0,
        maxWaitMs: s.op.maxTimeoutMs,
        leaseMs: s.op.maxTimeoutMs + LEASE_MARGIN_MS,
        // A job meets the breaker when it runs, not when it is accepted.
        ...(s.mode === "sync"
          ? { breaker: { ...d.breakerSettings, trialTimeoutMs: s.op.maxTimeoutMs } }
          : {}),
      },
      signal,
    );
    if (!admission.admitted) throw refusal(d, admission, s);
    try {
      return await work(admission.breaker ?? { phase: "closed", failures: 0 });
    } finally {
      if (admission.slot) await d.limiter.release(admission.slot);
    }
  } finally {
    d.inFlight.leave();
  }
}

function refusal(
  d: AdmissionDeps,
  a: Exclude<Admission, { admitted: true }>,
  s: AdmissionSubject,
): ConnectorError {
  const retryAfterMs = a.retryAfterMs;
  if (a.reason === "rate_limited") {
    const scope = a.bucket.slice(0, a.bucket.indexOf(":"));
    d.onQuotaExceeded?.(scope);
    return new ConnectorError(
      "quota_exceeded",
      "RateLimited",
      `the ${scope} rate limit is reached; retry after ${retryAfterMs} ms`,
      {
        retryAfterMs,
      },
    );
  }
  if (a.reason === "circuit_open") return circuitOpen(retryAfterMs);
  const cap = s.row.limits?.maxParallelInvocations;
  return a.reason === "busy"
    ? new ConnectorError(
        "transient",
        "Busy",
        `all ${cap} parallel invocations of this connector are in use`,
        { retryAfterMs },
      )
    : new ConnectorError(
        "transient",
        "QueueFull",
        `the queue of this connector is full (${s.row.limits?.queueDepth ?? 0} waiting)`,
        {
          retryAfterMs,
        },
      );
}

export function circuitOpen(retryAfterMs: number): ConnectorError {
  return new ConnectorError(
    "transient",
    "CircuitOpen",
    "the circuit breaker of this connector is open after failures in a row; calls resume after a successful trial",
    { retryAfterMs },
  );
}
