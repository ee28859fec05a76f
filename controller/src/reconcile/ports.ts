// The small interfaces the reconciler depends on. kube/, store/, secrets/ and probes/
// implement them; unit tests use in-memory versions.
import type {
  Connector,
  ConnectorState,
  ConnectorStatus,
  ConnectorType,
  Credentials,
  PolicyTemplate,
  ErrorClass,
  JsonObject,
  Limits,
  Owner,
  RateLimit,
  SecretRef,
} from "../api/types.ts";

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

/** The instance table and the audit log. `transaction` runs fn atomically. */
export interface InstanceStore {
  /** The live (not soft-deleted) row bound to this Kubernetes uid. */
  findByUid(uid: string): Promise<InstanceRow | undefined>;
  insert(row: NewInstance): Promise<InstanceRow>;
  /** Writes only the given columns (and updated_at). */
  update(id: string, patch: InstancePatch): Promise<InstanceRow>;
  softDelete(id: string, at: Date): Promise<void>;
  appendAudit(event: AuditEvent): Promise<void>;
  listAudit(filter: { namespace: string; name: string }): Promise<StoredAuditEvent[]>;
  transaction<T>(fn: (tx: InstanceStore) => Promise<T>): Promise<T>;
  /** Removes soft-deleted rows deleted before `before`; returns what it removed. */
  purgeDeletedInstances(
    before: Date,
  ): Promise<Pick<InstanceRow, "id" | "namespace" | "name" | "uid" | "projectId">[]>;
  /** Removes audit rows older than `before` (the only way audit rows ever leave); returns how many. */
  purgeAudit(before: Date): Promise<number>;
}

/** Read-only view of the catalog (ConnectorTypes and policy templates), from the informer cache. */
export interface CatalogReader {
  getType(name: string): ConnectorType | undefined;
  getPolicyTemplate(name: string): PolicyTemplate | undefined;
}

/** Writes to the Connector resource itself. */
export interface ConnectorWriter {
  /** Patches /status. Callers only call it when the status changed. */
  writeStatus(connector: Connector, status: ConnectorStatus): Promise<void>;
  addFinalizer(connector: Connector): Promise<void>;
  removeFinalizer(connector: Connector): Promise<void>;
}

export type EventType = "Normal" | "Warning";

export interface EventRecorder {
  record(connector: Connector, type: EventType, reason: string, message: string): void;
}

/** Secret values, held only for the probe. */
export interface ResolvedSecret {
  values: Record<string, string>;
  version: number | null;
  fingerprint: string;
}

export interface SecretResolver {
  resolve(namespace: string, ref: SecretRef, signal?: AbortSignal): Promise<ResolvedSecret>;
}

export interface ProbeInput {
  type: ConnectorType;
  typeVersion: number;
  config: JsonObject;
  credentials: Record<string, string> | undefined;
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface ProbeResult {
  ok: boolean;
  latencyMs: number;
  errorClass?: ErrorClass;
  /** "auth" marks an authentication failure (=> credential_expired). */
  reason?: string;
  message?: string;
  /** The provider's status code when the protocol has one (HTTP status, SMTP reply code). */
  providerStatusCode?: number;
  /** For quota_exceeded: the provider's Retry-After, in milliseconds. */
  retryAfterMs?: number;
}

export interface Prober {
  /** undefined when this probe kind is not available. */
  probe(input: ProbeInput): Promise<ProbeResult> | undefined;
}

export interface Clock {
  now(): Date;
}

/** The slice of pino the reconciler uses. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}
