// The ports of the reconciler: interfaces only. kube/, store/, secrets/ and drivers/
// implement them; unit tests use in-memory versions.
import type {
  Connector,
  ConnectorStatus,
  SecretProvider,
  SecretProviderReason,
  SecretProviderStatus,
  SecretRef,
} from "../api/types.ts";
import type {
  AuditEvent,
  InstancePatch,
  InstanceRow,
  NewInstance,
  ProbeInput,
  ProbeResult,
  ResolvedSecret,
  StoredAuditEvent,
} from "../api/model.ts";

/** The instance table and the audit log. `transaction` runs fn atomically. */
export interface InstanceStore {
  /** The live (not soft-deleted) row bound to this Kubernetes uid. */
  findByUid(uid: string, signal?: AbortSignal): Promise<InstanceRow | undefined>;
  insert(row: NewInstance): Promise<InstanceRow>;
  /** Writes only the given columns (and updated_at). */
  update(id: string, patch: InstancePatch): Promise<InstanceRow>;
  softDelete(id: string, at: Date): Promise<void>;
  appendAudit(event: AuditEvent): Promise<void>;
  listAudit(filter: { namespace: string; name: string }): Promise<StoredAuditEvent[]>;
  /** `signal` is checked before every statement; when it fires the transaction rolls back. */
  transaction<T>(fn: (tx: InstanceStore) => Promise<T>, signal?: AbortSignal): Promise<T>;
  /** Removes soft-deleted rows deleted before `before`; returns what it removed. */
  purgeDeletedInstances(
    before: Date,
  ): Promise<Pick<InstanceRow, "id" | "namespace" | "name" | "uid" | "projectId">[]>;
  /** Removes audit rows older than `before` (the only way audit rows ever leave); returns how many. */
  purgeAudit(before: Date): Promise<number>;
}

/** Writes to the Connector resource itself. */
export interface ConnectorWriter {
  /** Patches /status. Callers only call it when the status changed. */
  writeStatus(connector: Connector, status: ConnectorStatus, signal?: AbortSignal): Promise<void>;
  addFinalizer(connector: Connector, signal?: AbortSignal): Promise<void>;
  removeFinalizer(connector: Connector, signal?: AbortSignal): Promise<void>;
}

export type EventType = "Normal" | "Warning";

export interface EventRecorder {
  record(connector: Connector, type: EventType, reason: string, message: string): void;
}

export interface SecretResolver {
  resolve(namespace: string, ref: SecretRef, signal?: AbortSignal): Promise<ResolvedSecret>;
}

export interface Prober {
  /** undefined when this probe kind is not available. */
  probe(input: ProbeInput): Promise<ProbeResult> | undefined;
}

/** The outcome of checking a SecretProvider, for its Ready condition. */
export interface ProviderCheck {
  ready: boolean;
  reason: SecretProviderReason;
  message: string;
}

/** Checks SecretProviders and keeps the sessions opened with them in step with their spec. */
export interface SecretProviderChecker {
  checkProvider(provider: SecretProvider, signal?: AbortSignal): Promise<ProviderCheck>;
  /** Drops (and revokes) the sessions of a provider whose spec changed. */
  providerChanged(name: string): Promise<void>;
  providerDeleted(name: string): Promise<void>;
}

export interface SecretProviderStatusWriter {
  /** Patches /status; returns the object the API server answered with. */
  writeStatus(
    provider: SecretProvider,
    status: SecretProviderStatus,
    signal?: AbortSignal,
  ): Promise<SecretProvider>;
}

/** Counters the reconciler reports; observability/ implements them with prom-client. */
export interface ReconcileMetrics {
  probe(kind: string, outcome: string, seconds: number): void;
  breakerTrip(type: string): void;
  driftCorrected(type: string): void;
  secretResolution(provider: string, result: string): void;
}

/** The part of an AdmissionReview request the decision reads. */
export interface AdmissionRequest {
  uid: string;
  operation: "CREATE" | "UPDATE" | "DELETE" | "CONNECT";
  object?: Connector;
  oldObject?: Connector;
}

export interface AdmissionVerdict {
  allowed: boolean;
  message?: string;
  warnings?: string[];
}
