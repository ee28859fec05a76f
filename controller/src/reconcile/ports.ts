// The ports of the reconciler: interfaces only. kube/, store/, secrets/ and drivers/
// implement them; unit tests use in-memory versions.
import type { Connector, ConnectorStatus, ConnectorType, PolicyTemplate, SecretRef } from "../api/types.ts";
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

export interface SecretResolver {
  resolve(namespace: string, ref: SecretRef, signal?: AbortSignal): Promise<ResolvedSecret>;
}

export interface Prober {
  /** undefined when this probe kind is not available. */
  probe(input: ProbeInput): Promise<ProbeResult> | undefined;
}
