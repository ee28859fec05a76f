// The domain model: the instance row and what the controller and the gateway know about a
// connector, as plain values. Depends on nothing but the API types.
import type { ConnectorError } from "./errors.ts";
import type {
  ConnectorState,
  ConnectorType,
  Credentials,
  ErrorClass,
  JsonObject,
  Limits,
  Owner,
  RateLimit,
} from "./types.ts";

/** The policy as stored on the instance: resolved operations with their class. */
export interface StoredPolicy {
  template?: string;
  actionScope: string[];
  operations: { name: string; class: "auto" | "approval_required"; action: string }[];
}

/** Columns that follow the spec. Compared on every reconcile; a difference is an update or drift. */
export interface DesiredInstance {
  owner: Owner;
  projectId: string | null;
  type: string;
  typeVersion: number;
  config: JsonObject;
  configSchemaVersion: string;
  /** The spec's credentials block: references only, never values. */
  credentialsRef: Credentials | null;
  policy: StoredPolicy;
  limits: Limits | null;
  rateLimitPolicy: RateLimit | null;
  enabled: boolean;
}

export const DESIRED_FIELDS = [
  "owner",
  "projectId",
  "type",
  "typeVersion",
  "config",
  "configSchemaVersion",
  "credentialsRef",
  "policy",
  "limits",
  "rateLimitPolicy",
  "enabled",
] as const satisfies readonly (keyof DesiredInstance)[];

/** Columns the controller observes from the world (secrets, probes). */
export interface ObservedInstance {
  state: ConnectorState;
  secretVersion: number | null;
  secretFingerprint: string | null;
  lastSuccessAt: Date | null;
  lastError: string | null;
  lastErrorClass: ErrorClass | null;
  healthCheckedAt: Date | null;
}

export interface InstanceRow extends DesiredInstance, ObservedInstance {
  id: string;
  namespace: string;
  name: string;
  uid: string;
  appliedGeneration: number;
  specHash: string;
  createdAt: Date;
  updatedAt: Date;
  deletedAt: Date | null;
}

export type NewInstance = Omit<InstanceRow, "id" | "createdAt" | "updatedAt" | "deletedAt">;
export type InstancePatch = Partial<Omit<InstanceRow, "id" | "namespace" | "name" | "uid" | "createdAt">>;

export interface AuditEvent {
  requestId: string;
  correlationId?: string | null;
  actor?: string | null;
  projectId?: string | null;
  connectorInstanceId?: string | null;
  namespace: string;
  name: string;
  operation: string;
  executionMode?: string | null;
  outcome: "success" | "failure" | "denied";
  durationMs?: number | null;
  providerStatusCode?: number | null;
  retryCount?: number;
  details?: JsonObject;
}

export interface StoredAuditEvent extends AuditEvent {
  id: string;
  at: Date;
}

/** Secret values, held only for the probe. */
export interface ResolvedSecret {
  values: Record<string, string>;
  version: number | null;
  fingerprint: string;
}

export interface ProbeInput {
  type: ConnectorType;
  typeVersion: number;
  config: JsonObject;
  credentials: Record<string, string> | undefined;
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * A health check's finding. A failure is the same ConnectorError every other step raises;
 * reason AuthenticationFailed means the server refused the credentials (=> credential_expired).
 */
export type ProbeResult =
  | { ok: true; latencyMs: number; providerStatusCode?: number }
  | { ok: false; latencyMs: number; error: ConnectorError };

export const AUTHENTICATION_FAILED = "AuthenticationFailed";
