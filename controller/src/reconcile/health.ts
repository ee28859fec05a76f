// Step "probe": is the connector reachable? Runs the type's probe when one is due, guarded
// by the instance's circuit breaker, and turns the result into the instance's next state:
//   ok => active; authentication refused => credential_expired;
//   a transient failure => degraded (was active) or error; an open breaker => error, and no
//   probe until its cooldown ends.
import { createHash } from "node:crypto";
import type { Connector, ConnectorState, ErrorClass, HealthCheck } from "../api/types.ts";
import {
  AUTHENTICATION_FAILED,
  type InstanceRow,
  type ObservedInstance,
  type ProbeInput,
  type ProbeResult,
} from "../api/model.ts";
import type { BreakerState } from "../api/breaker.ts";
import type { CircuitBreakers } from "./breaker.ts";
import type { Prober } from "./ports.ts";
import type { HealthView } from "./status.ts";

export const DEFAULT_INTERVAL_SECONDS = 300;
export const DEFAULT_TIMEOUT_SECONDS = 10;

export function intervalMs(hc: HealthCheck | undefined): number {
  return (hc?.intervalSeconds ?? DEFAULT_INTERVAL_SECONDS) * 1000;
}

export interface HealthOutcome {
  health: HealthView;
  observed: Partial<ObservedInstance>;
  /** The probe's own result, when one ran. */
  result?: ProbeResult;
  tripped?: boolean;
}

const FAILING: ReadonlySet<ConnectorState> = new Set(["active", "degraded"]);

/** What an open breaker reports, without probing. */
export function openBreakerOutcome(row: InstanceRow): HealthOutcome {
  return {
    health: {
      status: "False",
      reason: "CircuitOpen",
      message: `health checks are paused after repeated failures: ${row.lastError ?? "probe failed"}`,
    },
    observed: { state: "error" },
  };
}

export async function checkHealth(
  prober: Prober | undefined,
  breakers: CircuitBreakers,
  row: InstanceRow,
  input: ProbeInput,
  now: Date,
): Promise<HealthOutcome> {
  const pending = prober?.probe(input);
  if (!pending) {
    // No probe for this kind: the instance is applied but its connectivity is not known.
    const kind =
      input.type.spec.versions.find((v) => v.version === input.typeVersion)?.healthProbe.kind ?? "unknown";
    const state: ConnectorState =
      row.state === "provisioning" || row.state === "disabled" ? "active" : row.state;
    return {
      health: {
        status: "Unknown",
        reason: "ProbeUnavailable",
        message: `no health probe is available for kind ${kind}`,
      },
      observed: { state, healthCheckedAt: now },
    };
  }
  const result = await pending;
  const checked = { healthCheckedAt: now };
  if (result.ok) {
    await breakers.success(row.id);
    return {
      result,
      health: { status: "True", reason: "ConnectivityOK", message: "health probe succeeded" },
      observed: { ...checked, state: "active", lastSuccessAt: now, lastError: null, lastErrorClass: null },
    };
  }
  const { message, errorClass } = result.error;
  const failed = (errorClass: ErrorClass) => ({ ...checked, lastError: message, lastErrorClass: errorClass });
  if (result.error.reason === AUTHENTICATION_FAILED) {
    await breakers.success(row.id); // not a connectivity failure: the server answered
    return {
      result,
      health: { status: "False", reason: "AuthenticationFailed", message },
      observed: { ...failed(errorClass), state: "credential_expired" },
    };
  }
  if (errorClass === "policy_denied") {
    return {
      result,
      health: { status: "False", reason: "EgressDenied", message },
      observed: { ...failed("policy_denied"), state: "error" },
    };
  }
  const breaker = await breakers.failure(row.id);
  if (breaker.open) {
    return {
      result,
      tripped: breaker.tripped,
      health: {
        status: "False",
        reason: "CircuitOpen",
        message: `health checks are paused after repeated failures: ${message}`,
      },
      observed: { ...failed(errorClass), state: "error" },
    };
  }
  return {
    result,
    health: { status: "False", reason: "ConnectivityFailed", message },
    observed: {
      ...failed(errorClass),
      state: FAILING.has(row.state) ? "degraded" : "error",
    },
  };
}

/** A probe up to this much early still counts as on time (timers and queues are not exact). */
export function slackMs(everyMs: number): number {
  return Math.min(2000, everyMs * 0.1);
}

/**
 * Whether a probe runs now, and when the next one is due. `steady` means a healthy
 * schedule, which the caller aligns (see alignToGrid); otherwise the instance is failing
 * and is retried sooner.
 */
export function probePlan(
  row: InstanceRow,
  breaker: BreakerState,
  retryMs: number,
  now: Date,
  hc: HealthCheck | undefined,
  force: boolean,
): { run: boolean; open: boolean; nextInMs: number; steady: boolean } {
  if (breaker.phase === "open")
    return { run: false, open: true, steady: false, nextInMs: breaker.retryAfterMs };
  const since = row.healthCheckedAt ? now.getTime() - row.healthCheckedAt.getTime() : Infinity;
  const failing = breaker.failures > 0;
  const every = failing ? Math.min(retryMs, intervalMs(hc)) : intervalMs(hc);
  const run =
    force || breaker.phase === "half-open" || row.state === "provisioning" || since >= every - slackMs(every);
  return { run, open: false, steady: !failing, nextInMs: run ? every : every - since };
}

/**
 * Delay until the first point of a per-key grid (period `intervalMs`, offset from a hash of
 * `key`) at or after `delayMs`. Connectors sharing a secret share a key, so their probes
 * come due together and share one read of it; different keys spread evenly over the period.
 */
export function alignToGrid(nowMs: number, delayMs: number, intervalMs: number, key: string): number {
  const offset = parseInt(createHash("sha256").update(key).digest("hex").slice(0, 12), 16) % intervalMs;
  const target = nowMs + Math.max(0, delayMs - slackMs(intervalMs));
  const sinceOffset = (((target - offset) % intervalMs) + intervalMs) % intervalMs;
  const at = sinceOffset === 0 ? target : target + intervalMs - sinceOffset;
  return Math.max(1000, at - nowMs);
}

/** Connectors that share a secret probe together (one read); the others spread by uid. */
export function probeGridKey(c: Connector): string {
  const ref = c.spec.credentials?.secretRef;
  return ref
    ? `${c.metadata.namespace}/${ref.provider}/${ref.name}/${ref.version ?? ""}`
    : (c.metadata.uid ?? c.metadata.name);
}
