// In-memory implementations of the reconciler's own ports, for unit tests. They count
// writes so tests can prove that a quiet reconcile writes nothing.
import { randomUUID } from "node:crypto";
import type { Connector, ConnectorStatus } from "../../controller/src/api/types.ts";
import type {
  AuditEvent,
  InstancePatch,
  InstanceRow,
  NewInstance,
  StoredAuditEvent,
} from "../../controller/src/api/model.ts";
import type { Clock } from "../../controller/src/api/clock.ts";
import type {
  ConnectorWriter,
  EventRecorder,
  EventType,
  InstanceStore,
} from "../../controller/src/reconcile/ports.ts";
import type { Logger } from "../../controller/src/api/logger.ts";

export class MemoryStore implements InstanceStore {
  rows: InstanceRow[] = [];
  audit: StoredAuditEvent[] = [];
  inserts = 0;
  updates: InstancePatch[] = [];

  async findByUid(uid: string) {
    const row = this.rows.find((r) => r.uid === uid && !r.deletedAt);
    return row ? structuredClone(row) : undefined;
  }

  async insert(row: NewInstance) {
    if (this.rows.some((r) => r.uid === row.uid && !r.deletedAt))
      throw new Error("duplicate live row for uid");
    const now = new Date();
    const full: InstanceRow = {
      ...structuredClone(row),
      id: randomUUID(),
      createdAt: now,
      updatedAt: now,
      deletedAt: null,
    };
    this.rows.push(full);
    this.inserts++;
    return structuredClone(full);
  }

  async update(id: string, patch: InstancePatch) {
    const row = this.rows.find((r) => r.id === id);
    if (!row) throw new Error(`no row ${id}`);
    this.updates.push(structuredClone(patch));
    Object.assign(row, structuredClone(patch), { updatedAt: new Date() });
    return structuredClone(row);
  }

  async softDelete(id: string, at: Date) {
    const row = this.rows.find((r) => r.id === id);
    if (row) row.deletedAt = at;
  }

  async appendAudit(e: AuditEvent) {
    this.audit.push({ ...structuredClone(e), id: String(this.audit.length + 1), at: new Date() });
  }

  async listAudit(f: { namespace: string; name: string }) {
    return this.audit.filter((e) => e.namespace === f.namespace && e.name === f.name);
  }

  async transaction<T>(fn: (tx: InstanceStore) => Promise<T>): Promise<T> {
    const saved = structuredClone({ rows: this.rows, audit: this.audit });
    try {
      return await fn(this);
    } catch (err) {
      this.rows = saved.rows;
      this.audit = saved.audit;
      throw err;
    }
  }

  async purgeDeletedInstances(before: Date) {
    const gone = this.rows.filter((r) => r.deletedAt && r.deletedAt < before);
    this.rows = this.rows.filter((r) => !gone.includes(r));
    return gone.map(({ id, namespace, name, uid, projectId }) => ({ id, namespace, name, uid, projectId }));
  }

  async purgeAudit(before: Date) {
    const n = this.audit.length;
    this.audit = this.audit.filter((e) => e.at >= before);
    return n - this.audit.length;
  }

  get writes(): number {
    return this.inserts + this.updates.length;
  }
}

/** Applies writes to the in-memory Connector the test holds, as the API server would. */
export class MemoryWriter implements ConnectorWriter {
  statusWrites: ConnectorStatus[] = [];
  finalizerAdds = 0;
  finalizerRemoves = 0;

  async writeStatus(c: Connector, status: ConnectorStatus) {
    this.statusWrites.push(structuredClone(status));
    c.status = structuredClone(status);
  }

  async addFinalizer(c: Connector) {
    this.finalizerAdds++;
    c.metadata.finalizers = [...(c.metadata.finalizers ?? []), "cynodeai.io/instance-cleanup"];
  }

  async removeFinalizer(c: Connector) {
    this.finalizerRemoves++;
    c.metadata.finalizers = (c.metadata.finalizers ?? []).filter((f) => f !== "cynodeai.io/instance-cleanup");
  }
}

export class MemoryEvents implements EventRecorder {
  events: { type: EventType; reason: string; message: string }[] = [];
  record(_c: Connector, type: EventType, reason: string, message: string) {
    this.events.push({ type, reason, message });
  }
}

export class ManualClock implements Clock {
  #t: number;
  constructor(start = "2026-01-01T00:00:00Z") {
    this.#t = Date.parse(start);
  }
  now() {
    return new Date(this.#t);
  }
  advance(ms: number) {
    this.#t += ms;
  }
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** A logger that keeps every line as text (fields as JSON, then the message), for secret scans. */
export function recordingLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const record = (obj: object, msg?: string) => lines.push(`${JSON.stringify(obj)} ${msg ?? ""}`);
  return { log: { debug: record, info: record, warn: record, error: record }, lines };
}
