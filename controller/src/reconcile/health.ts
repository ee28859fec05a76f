// Step 6: is the connector reachable? Runs the type's probe when one is due and turns the
// result into the instance's next state.
import type { ConnectorState, HealthCheck } from "../api/types.ts";
import type { HealthView } from "./status.ts";
import type { InstanceRow, ObservedInstance, ProbeInput, Prober } from "./ports.ts";

export const DEFAULT_INTERVAL_SECONDS = 300;
export const DEFAULT_TIMEOUT_SECONDS = 10;

export function intervalMs(hc: HealthCheck | undefined): number {
  return (hc?.intervalSeconds ?? DEFAULT_INTERVAL_SECONDS) * 1000;
}

export function probeDue(row: InstanceRow, now: Date, hc: HealthCheck | undefined, force: boolean): boolean {
  if (force || !row.healthCheckedAt || row.state === "provisioning") return true;
  return now.getTime() - row.healthCheckedAt.getTime() >= intervalMs(hc);
}

export interface HealthOutcome {
  health: HealthView;
  observed: Partial<ObservedInstance>;
}

export async function checkHealth(
  prober: Prober | undefined,
  row: InstanceRow,
  input: ProbeInput,
  now: Date,
): Promise<HealthOutcome> {
  const pending = prober?.probe(input);
  if (!pending) {
    // No probe for this kind: the instance is applied but its connectivity is not known.
    const state: ConnectorState =
      row.state === "provisioning" || row.state === "disabled" ? "active" : row.state;
    return {
      health: {
        status: "Unknown",
        reason: "ProbeUnavailable",
        message: `no health probe is available for kind ${input.type.spec.versions.find((v) => v.version === input.typeVersion)?.healthProbe.kind ?? "unknown"}`,
      },
      observed: { state, healthCheckedAt: now },
    };
  }
  const result = await pending;
  if (result.ok) {
    return {
      health: { status: "True", reason: "ConnectivityOK", message: "health probe succeeded" },
      observed: {
        state: "active",
        healthCheckedAt: now,
        lastSuccessAt: now,
        lastError: null,
        lastErrorClass: null,
      },
    };
  }
  const message = result.message ?? "health probe failed";
  if (result.reason === "auth") {
    return {
      health: { status: "False", reason: "AuthenticationFailed", message },
      observed: {
        state: "credential_expired",
        healthCheckedAt: now,
        lastError: message,
        lastErrorClass: result.errorClass ?? "permanent",
      },
    };
  }
  const state: ConnectorState = row.state === "active" || row.state === "degraded" ? "degraded" : "error";
  return {
    health: { status: "False", reason: "ConnectivityFailed", message },
    observed: {
      state,
      healthCheckedAt: now,
      lastError: message,
      lastErrorClass: result.errorClass ?? "transient",
    },
  };
}
