// What a reconcile found about the world (credentials, the probe) as plain values, for the
// record step to write to the row and to status.
import type { ConnectorError } from "../api/errors.ts";
import type { InstanceRow, ObservedInstance, ProbeResult } from "../api/model.ts";
import type { HealthCheck } from "../api/types.ts";
import type { CircuitBreakers } from "./breaker.ts";
import type { CredentialOutcome } from "./credentials.ts";
import { checkHealth, DEFAULT_TIMEOUT_SECONDS, openBreakerOutcome, type probePlan } from "./health.ts";
import type { Prober } from "./ports.ts";
import type { HealthView } from "./status.ts";
import type { ValidSpec } from "./validate.ts";

export interface Finding {
  /** Whether credentials were resolved and the probe ran (its observations are then written). */
  probed: boolean;
  /** Columns of the row this reconcile observed (state, secret version, probe times...). */
  observed: Partial<ObservedInstance>;
  health?: HealthView;
  /** A credential problem that is not the spec's fault: Synced=False with its reason. */
  credentialProblem?: ConnectorError;
  auth?: { state: string; url?: string };
  rotated?: { from: number | null; to: number | null };
  /** The probe's own result, when one ran. */
  result?: ProbeResult;
  /** This probe opened the breaker. */
  tripped?: boolean;
  /**
   * When to come back: `steady` on the probe grid, otherwise sooner to retry. Absent: from
   * the row a probe just wrote, or never (a disabled connector).
   */
  next?: { inMs: number; steady: boolean };
}

export type ProbeSchedule = ReturnType<typeof probePlan>;

/** A disabled connector: nothing to find, nothing to come back for. */
export function idle(): Finding {
  return { probed: false, observed: {} };
}

/** No probe is due: the last finding stands (an open breaker says so). */
export function notDue(schedule: ProbeSchedule, row: InstanceRow): Finding {
  return {
    probed: false,
    observed: {},
    next: { inMs: schedule.nextInMs, steady: schedule.steady },
    ...(schedule.open ? { health: openBreakerOutcome(row).health } : {}),
  };
}

/** Credentials the spec names cannot be used yet (a secret or key missing, deleted): retried soon. */
export function credentialFinding(err: ConnectorError, now: Date, retryMs: number): Finding {
  return {
    probed: true,
    observed: {
      healthCheckedAt: now,
      state: err.reason === "SecretDeleted" ? "credential_expired" : "error",
      lastError: err.message,
      lastErrorClass: err.errorClass,
    },
    health: { status: "False", reason: err.reason, message: err.message },
    credentialProblem: err,
    next: { inMs: retryMs, steady: false },
  };
}

export interface HealthInput {
  prober: Prober | undefined;
  breakers: CircuitBreakers;
  row: InstanceRow;
  valid: ValidSpec;
  healthCheck: HealthCheck | undefined;
  credentials: CredentialOutcome;
  now: Date;
  signal: AbortSignal | undefined;
}

/** Probes with the resolved credentials (or waits for OAuth consent). */
export async function findHealth(i: HealthInput): Promise<Finding> {
  if (i.credentials.kind === "pending")
    return {
      probed: true,
      observed: { state: "provisioning", healthCheckedAt: i.now },
      health: {
        status: "Unknown",
        reason: "AuthorizationPending",
        message: "waiting for the OAuth flow to complete",
      },
      auth: i.credentials.auth,
      next: { inMs: i.breakers.settings.retryMs, steady: false },
    };
  const resolved = i.credentials.kind === "resolved" ? i.credentials : undefined;
  const outcome = await checkHealth(
    i.prober,
    i.breakers,
    i.row,
    {
      type: i.valid.type,
      typeVersion: i.valid.version.version,
      config: i.row.config,
      credentials: resolved?.values,
      timeoutMs: (i.healthCheck?.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS) * 1000,
      ...(i.signal ? { signal: i.signal } : {}),
    },
    i.now,
  );
  return {
    probed: true,
    observed: { ...resolved?.observed, ...outcome.observed },
    health: outcome.health,
    ...(outcome.result ? { result: outcome.result } : {}),
    ...(outcome.tripped ? { tripped: true } : {}),
    ...(resolved?.rotated ? { rotated: resolved.rotated } : {}),
    ...(resolved?.auth ? { auth: resolved.auth } : {}),
  };
}
