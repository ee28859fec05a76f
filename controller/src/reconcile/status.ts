// Step 7: the status users and tools read, computed from what this reconcile found.
// Pure: the same inputs give an equal status, so an unchanged status is never written.
import { nextConditions, statusEqual, type ConditionInput } from "../api/conditions.ts";
import { DEPRECATED_ANNOTATION } from "./policies.ts";
import type { ConnectorWriter, EventRecorder } from "./ports.ts";
import type { Connector, ConnectorState, ConnectorStatus, ErrorClass } from "../api/types.ts";
import type { ConnectorError } from "../api/errors.ts";
import type { InstanceRow } from "../api/model.ts";

export interface HealthView {
  /** True/False/Unknown for the Healthy condition. */
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
}

export interface DriftView {
  /** Fields that differed in this reconcile (paths only). */
  fields: string[];
  corrected: boolean;
}

export interface StatusInput {
  connector: Connector;
  now: Date;
  row: InstanceRow | undefined;
  /** Set when this generation could not be applied or the reconcile failed. */
  failure?: ConnectorError;
  warnings?: ConditionInput[];
  health?: HealthView;
  drift?: DriftView;
  /** A credential problem found this reconcile (not the spec's fault): Synced=False. */
  syncProblem?: ConnectorError;
  /** Whether credentials and the probe ran this reconcile (else their last finding stands). */
  probed?: boolean;
  /** For credentials.mode oauth: the authorization's progress. */
  auth?: { state: string; url?: string };
}

/** Synced reasons that come from resolving credentials; they stand until the next probe. */
const CREDENTIAL_REASONS: ReadonlySet<string> = new Set([
  "SecretNotFound",
  "SecretDeleted",
  "SecretKeyMissing",
  "OAuthNotConfigured",
]);

const READY_STATES: ReadonlySet<ConnectorState> = new Set(["active", "degraded"]);

function stateMessage(state: ConnectorState, health: HealthView | undefined): string {
  switch (state) {
    case "active":
      return health?.status === "True" ? "connector is active and reachable" : "connector is active";
    case "degraded":
      return `connector is degraded: ${health?.message ?? "health checks are failing"}`;
    case "provisioning":
      return health?.message ?? "connector is being provisioned";
    case "credential_expired":
      return `credentials were refused: ${health?.message ?? "authentication failed"}`;
    case "error":
      return `connector is failing: ${health?.message ?? "health checks are failing"}`;
    case "disabled":
      return "connector is disabled";
  }
}

function hardFailure(
  state: ConnectorState,
  health: HealthView | undefined,
): { reason: string; message: string } | undefined {
  if (state === "credential_expired")
    return { reason: "CredentialExpired", message: stateMessage(state, health) };
  if (state === "error" && health?.reason === "CircuitOpen")
    return { reason: "CircuitOpen", message: health.message };
  return undefined;
}

function isTerminal(c: ErrorClass): boolean {
  return c === "validation_error" || c === "policy_denied" || c === "permanent";
}

export function buildStatus(input: StatusInput): ConnectorStatus {
  const { connector, row, failure, now } = input;
  const prev = connector.status ?? {};
  // When no probe ran, the last probe's finding stands (and its words stay the same).
  const prevHealthy = prev.conditions?.find((c) => c.type === "Healthy");
  const health: HealthView | undefined =
    input.health ??
    (prevHealthy
      ? { status: prevHealthy.status, reason: prevHealthy.reason, message: prevHealthy.message }
      : undefined);
  const generation = connector.metadata.generation;
  const stalled = failure !== undefined && isTerminal(failure.errorClass);
  // A passing failure that kept us from reading the row leaves what status said standing.
  const unread = !row && failure !== undefined && !stalled;
  const state: ConnectorState =
    row?.state ?? (unread && prev.state ? prev.state : failure ? "error" : "provisioning");
  const wanted: ConditionInput[] = [];

  // Ready: the summary kstatus, kubectl wait and Argo CD read. A passing failure (the
  // database or Vault briefly away) does not take a working connector's Ready away: it
  // shows in Synced, and the last good state stands.
  const prevReady = prev.conditions?.find((c) => c.type === "Ready");
  if (failure && !stalled && prevReady) {
    wanted.push({
      type: "Ready",
      status: prevReady.status,
      reason: prevReady.reason,
      message: prevReady.message,
    });
  } else if (failure) {
    wanted.push({ type: "Ready", status: "False", reason: failure.reason, message: failure.message });
  } else if (state === "disabled") {
    wanted.push({ type: "Ready", status: "True", reason: "Disabled", message: stateMessage(state, health) });
  } else if (READY_STATES.has(state)) {
    wanted.push({
      type: "Ready",
      status: "True",
      reason: state === "active" ? "Available" : "Degraded",
      message: stateMessage(state, health),
    });
  } else {
    const reason =
      state === "credential_expired"
        ? "CredentialExpired"
        : state === "error"
          ? "Unavailable"
          : "Provisioning";
    wanted.push({ type: "Ready", status: "False", reason, message: stateMessage(state, health) });
  }

  const prevSynced = prev.conditions?.find((c) => c.type === "Synced");
  if (failure)
    wanted.push({ type: "Synced", status: "False", reason: failure.reason, message: failure.message });
  else if (input.syncProblem)
    wanted.push({
      type: "Synced",
      status: "False",
      reason: input.syncProblem.reason,
      message: input.syncProblem.message,
    });
  else if (
    !input.probed &&
    prevSynced?.status === "False" &&
    CREDENTIAL_REASONS.has(prevSynced.reason) &&
    row?.appliedGeneration === prev.appliedGeneration
  )
    wanted.push({ type: "Synced", status: "False", reason: prevSynced.reason, message: prevSynced.message });
  else
    wanted.push({
      type: "Synced",
      status: "True",
      reason: "ReconcileSuccess",
      message: `generation ${row?.appliedGeneration ?? generation} is applied`,
    });

  if (health) wanted.push({ type: "Healthy", ...health });
  else
    wanted.push({
      type: "Healthy",
      status: "Unknown",
      reason: "NotProbed",
      message: "no health check has run yet",
    });

  const driftNow = input.drift && input.drift.fields.length > 0 && !input.drift.corrected;
  const prevUpToDate = prev.conditions?.find((c) => c.type === "UpToDate");
  if (driftNow) {
    wanted.push({
      type: "UpToDate",
      status: "False",
      reason: "DriftDetected",
      message: `instance differs from the spec in ${input.drift!.fields.join(", ")}`,
    });
  } else if (input.drift || !failure || !prevUpToDate) {
    wanted.push({
      type: "UpToDate",
      status: "True",
      reason: "NoDrift",
      message: "instance matches the spec",
    });
  } else {
    wanted.push({
      type: "UpToDate",
      status: prevUpToDate.status,
      reason: prevUpToDate.reason,
      message: prevUpToDate.message,
    });
  }

  // Hard failures that only a person can fix (kstatus Failed, Argo CD Degraded): a spec that
  // cannot be applied, credentials the provider refuses, a breaker opened by failures in a row.
  // A single failed probe, or Vault or the database briefly away, is none of them.
  const hard = stalled ? undefined : hardFailure(state, health);
  if (stalled)
    wanted.push({ type: "Stalled", status: "True", reason: failure!.reason, message: failure!.message });
  else if (hard) wanted.push({ type: "Stalled", status: "True", ...hard });
  if (!stalled && state === "provisioning")
    wanted.push({
      type: "Reconciling",
      status: "True",
      reason: "Provisioning",
      message: stateMessage(state, health),
    });
  wanted.push(...(input.warnings ?? []));

  const status: ConnectorStatus = {
    observedGeneration: generation,
    state,
    conditions: nextConditions(prev.conditions, wanted, generation, now),
  };
  if (unread) {
    for (const k of ["appliedGeneration", "instanceId", "typeVersion", "configSchemaVersion"] as const)
      if (prev[k] !== undefined) Object.assign(status, { [k]: prev[k] });
  }
  if (row) {
    status.appliedGeneration = row.appliedGeneration;
    status.instanceId = row.id;
    status.typeVersion = row.typeVersion;
    status.configSchemaVersion = row.configSchemaVersion;
  }
  // lastSuccessAt moves only when the state changes: never a per-poll timestamp in status.
  const stateChanged = prev.state !== state;
  const lastSuccess = stateChanged
    ? row?.lastSuccessAt?.toISOString().replace(/\.\d{3}Z$/, "Z")
    : prev.lastSuccessAt;
  if (lastSuccess) status.lastSuccessAt = lastSuccess;
  if (failure) {
    status.lastError = { class: failure.errorClass, reason: failure.reason, message: failure.message };
  } else if (row?.lastErrorClass && row.lastError && state !== "active" && state !== "disabled") {
    status.lastError = { class: row.lastErrorClass, message: row.lastError };
  }
  // Drift shows while there is drift (under Observe, until the row matches again); the count
  // of corrections and the time of the last one stay.
  const prevDrift = prev.drift;
  const corrected = input.drift?.corrected === true && input.drift.fields.length > 0;
  const corrections = (prevDrift?.corrections ?? 0) + (corrected ? 1 : 0);
  const lastCorrectedAt = corrected
    ? now.toISOString().replace(/\.\d{3}Z$/, "Z")
    : prevDrift?.lastCorrectedAt;
  status.drift = {
    detected: driftNow === true,
    ...(driftNow ? { fields: input.drift!.fields } : {}),
    ...(lastCorrectedAt ? { lastCorrectedAt, corrections } : {}),
  };
  const auth = input.auth ?? (connector.spec.credentials?.mode === "oauth" ? prev.auth : undefined);
  if (auth) status.auth = auth;
  return status;
}

/**
 * Patches status when it differs from what the Connector shows, and records the Events
 * users watch for: Ready changing (Warning unless it became True and not degraded) and a
 * deprecated annotation first noticed. Returns whether it wrote.
 */
export async function publishStatus(
  d: { writer: ConnectorWriter; events: EventRecorder },
  c: Connector,
  status: ConnectorStatus,
  signal?: AbortSignal,
): Promise<boolean> {
  if (statusEqual(c.status, status)) return false;
  const prevReady = c.status?.conditions?.find((x) => x.type === "Ready");
  await d.writer.writeStatus(c, status, signal);
  const deprecated = status.conditions?.find((x) => x.type === DEPRECATED_ANNOTATION);
  if (deprecated && !c.status?.conditions?.some((x) => x.type === DEPRECATED_ANNOTATION))
    d.events.record(c, "Warning", DEPRECATED_ANNOTATION, deprecated.message);
  const ready = status.conditions?.find((x) => x.type === "Ready");
  if (
    ready &&
    (ready.status !== prevReady?.status ||
      ready.reason !== prevReady?.reason ||
      ready.message !== prevReady?.message)
  ) {
    const warn = ready.status !== "True" || status.state === "degraded";
    d.events.record(c, warn ? "Warning" : "Normal", ready.reason, ready.message);
  }
  return true;
}
