// The InstanceStore of reconcile/ports.ts over kysely: the connector_instances table and
// the append-only connector_audit_events log.
import { sql } from "kysely";
import type { ControlledTransaction, Insertable, Kysely, Selectable, Updateable } from "kysely";
import { throwIfAborted } from "../api/errors.ts";
import type { JsonObject } from "../api/types.ts";
import type { AuditEvent, InstancePatch, InstanceRow, NewInstance, StoredAuditEvent } from "../api/model.ts";
import type { InstanceStore } from "../reconcile/ports.ts";
import { AUDIT_PURGE_SETTING, WRITER_SETTING } from "./migrations.ts";
import type { ConnectorAuditEventsTable, ConnectorInstancesTable, Database } from "./schema.ts";

// ---- camelCase <-> snake_case: the one place the instance columns are mapped ----------

const INSTANCE_COLUMNS = {
  id: "id",
  namespace: "namespace",
  name: "name",
  uid: "uid",
  owner: "owner",
  projectId: "project_id",
  type: "type",
  typeVersion: "type_version",
  config: "config",
  configSchemaVersion: "config_schema_version",
  credentialsRef: "credentials_ref",
  secretVersion: "secret_version",
  secretFingerprint: "secret_fingerprint",
  policy: "policy",
  limits: "limits",
  rateLimitPolicy: "rate_limit_policy",
  enabled: "enabled",
  state: "state",
  lastSuccessAt: "last_success_at",
  lastError: "last_error",
  lastErrorClass: "last_error_class",
  healthCheckedAt: "health_checked_at",
  appliedGeneration: "applied_generation",
  specHash: "spec_hash",
  createdAt: "created_at",
  updatedAt: "updated_at",
  deletedAt: "deleted_at",
} as const satisfies { [K in keyof InstanceRow]-?: keyof ConnectorInstancesTable };

type InstanceField = keyof typeof INSTANCE_COLUMNS;

/** jsonb columns: written as JSON text (pg would turn a JS array into a Postgres array). */
const JSON_FIELDS: ReadonlySet<InstanceField> = new Set<InstanceField>([
  "owner",
  "config",
  "credentialsRef",
  "policy",
  "limits",
  "rateLimitPolicy",
]);

/** Never written by insert/update: generated, or the row's identity. */
const IMMUTABLE_ON_UPDATE: ReadonlySet<string> = new Set(["id", "namespace", "name", "uid", "createdAt"]);

function toColumnValue(field: InstanceField, value: unknown): unknown {
  if (JSON_FIELDS.has(field)) return value === null ? null : JSON.stringify(value);
  return value;
}

/** Maps the given (defined) fields to columns; rejects unknown or read-only fields. */
function toColumns(values: object, readOnly: ReadonlySet<string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined) continue;
    if (!Object.hasOwn(INSTANCE_COLUMNS, key) || readOnly.has(key)) {
      throw new Error(`connector instance field ${JSON.stringify(key)} cannot be written`);
    }
    const field = key as InstanceField;
    out[INSTANCE_COLUMNS[field]] = toColumnValue(field, value);
  }
  return out;
}

export function fromInstanceRow(row: Selectable<ConnectorInstancesTable>): InstanceRow {
  const out: Record<string, unknown> = {};
  for (const [field, column] of Object.entries(INSTANCE_COLUMNS)) out[field] = row[column];
  return out as unknown as InstanceRow;
}

export function toAuditColumns(e: AuditEvent): Insertable<ConnectorAuditEventsTable> {
  return {
    request_id: e.requestId,
    correlation_id: e.correlationId ?? null,
    actor: e.actor ?? null,
    project_id: e.projectId ?? null,
    connector_instance_id: e.connectorInstanceId ?? null,
    namespace: e.namespace,
    name: e.name,
    operation: e.operation,
    execution_mode: e.executionMode ?? null,
    outcome: e.outcome,
    duration_ms: e.durationMs ?? null,
    provider_status_code: e.providerStatusCode ?? null,
    retry_count: e.retryCount ?? 0,
    details: JSON.stringify(e.details ?? {}),
  };
}

function fromAuditRow(row: Selectable<ConnectorAuditEventsTable>): StoredAuditEvent {
  return {
    id: String(row.id),
    requestId: row.request_id,
    correlationId: row.correlation_id,
    actor: row.actor,
    projectId: row.project_id,
    connectorInstanceId: row.connector_instance_id,
    namespace: row.namespace,
    name: row.name,
    operation: row.operation,
    executionMode: row.execution_mode,
    outcome: row.outcome as StoredAuditEvent["outcome"],
    durationMs: row.duration_ms,
    providerStatusCode: row.provider_status_code,
    retryCount: row.retry_count,
    details: row.details as JsonObject,
    at: row.at,
  };
}

// ---- the store -------------------------------------------------------------------------

/**
 * The transaction of `transaction(fn)`, opened at fn's first write: reads before it run
 * as single statements (under READ COMMITTED they see what a statement in a transaction
 * would), and a reconcile that changes nothing costs one SELECT instead of BEGIN,
 * set_config, SELECT, COMMIT.
 */
class LazyTransaction {
  readonly #db: Kysely<Database>;
  #opening: Promise<ControlledTransaction<Database>> | undefined;
  tx: ControlledTransaction<Database> | undefined;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  open(): Promise<Kysely<Database>> {
    this.#opening ??= (async () => {
      const tx = await this.#db.startTransaction().execute();
      try {
        // Marks the transaction's writes as the controller's: the change trigger skips them.
        await sql`select set_config(${WRITER_SETTING}, 'controller', true)`.execute(tx);
      } catch (err) {
        await tx
          .rollback()
          .execute()
          .catch(() => {});
        throw err;
      }
      this.tx = tx;
      return tx;
    })();
    return this.#opening;
  }

  async finish(commit: boolean): Promise<void> {
    if (!this.#opening) return;
    const tx = await this.#opening.catch(() => undefined);
    if (!tx) return;
    if (commit) await tx.commit().execute();
    else await tx.rollback().execute();
  }
}

class KyselyInstanceStore implements InstanceStore {
  readonly #db: Kysely<Database>;
  readonly #lazy: LazyTransaction | undefined;
  /** The caller's deadline: checked before every statement, so an aborted transaction rolls back. */
  readonly #signal: AbortSignal | undefined;

  constructor(db: Kysely<Database>, lazy?: LazyTransaction, signal?: AbortSignal) {
    this.#db = db;
    this.#lazy = lazy;
    this.#signal = signal;
  }

  #inTransaction(): boolean {
    return this.#lazy !== undefined || this.#db.isTransaction;
  }

  /** Where reads go: the open transaction, else the pool. */
  #reader(): Kysely<Database> {
    throwIfAborted(this.#signal, "database read");
    return this.#lazy?.tx ?? this.#db;
  }

  /** Where writes go: the transaction (opened now if need be), else the pool. */
  #writer(): Promise<Kysely<Database>> {
    throwIfAborted(this.#signal, "database write");
    return this.#lazy ? this.#lazy.open() : Promise.resolve(this.#db);
  }

  async findByUid(uid: string, signal?: AbortSignal): Promise<InstanceRow | undefined> {
    throwIfAborted(signal, "database read");
    const row = await this.#reader()
      .selectFrom("connector_instances")
      .selectAll()
      .where("uid", "=", uid)
      .where("deleted_at", "is", null)
      .executeTakeFirst();
    return row === undefined ? undefined : fromInstanceRow(row);
  }

  async insert(row: NewInstance): Promise<InstanceRow> {
    if (!this.#inTransaction()) return this.transaction((tx) => tx.insert(row));
    const values = toColumns(row, new Set(["id", "createdAt", "updatedAt", "deletedAt"]));
    const inserted = await (
      await this.#writer()
    )
      .insertInto("connector_instances")
      .values(values as unknown as Insertable<ConnectorInstancesTable>)
      .returningAll()
      .executeTakeFirstOrThrow();
    return fromInstanceRow(inserted);
  }

  async update(id: string, patch: InstancePatch): Promise<InstanceRow> {
    if (!this.#inTransaction()) return this.transaction((tx) => tx.update(id, patch));
    const values = toColumns(patch, IMMUTABLE_ON_UPDATE) as Updateable<ConnectorInstancesTable>;
    const updated = await (
      await this.#writer()
    )
      .updateTable("connector_instances")
      // An explicit updatedAt in the patch wins over now().
      .set({ updated_at: sql<Date>`now()`, ...values })
      .where("id", "=", id)
      .returningAll()
      .executeTakeFirst();
    if (updated === undefined) throw new Error(`connector instance ${id} not found`);
    return fromInstanceRow(updated);
  }

  async softDelete(id: string, at: Date): Promise<void> {
    if (!this.#inTransaction()) return this.transaction((tx) => tx.softDelete(id, at));
    // Idempotent: a row already deleted keeps its first deleted_at.
    await (
      await this.#writer()
    )
      .updateTable("connector_instances")
      .set({ deleted_at: at, updated_at: sql<Date>`now()` })
      .where("id", "=", id)
      .where("deleted_at", "is", null)
      .execute();
  }

  async appendAudit(event: AuditEvent): Promise<void> {
    await (await this.#writer()).insertInto("connector_audit_events").values(toAuditColumns(event)).execute();
  }

  async listAudit(filter: { namespace: string; name: string }): Promise<StoredAuditEvent[]> {
    const rows = await this.#reader()
      .selectFrom("connector_audit_events")
      .selectAll()
      .where("namespace", "=", filter.namespace)
      .where("name", "=", filter.name)
      .orderBy("at")
      .orderBy("id")
      .execute();
    return rows.map(fromAuditRow);
  }

  async purgeDeletedInstances(before: Date) {
    const rows = await this.#writeTx((db) =>
      db
        .deleteFrom("connector_instances")
        .where("deleted_at", "is not", null)
        .where("deleted_at", "<", before)
        .returning(["id", "namespace", "name", "uid", "project_id"])
        .execute(),
    );
    return rows.map((r) => ({
      id: r.id,
      namespace: r.namespace,
      name: r.name,
      uid: r.uid,
      projectId: r.project_id,
    }));
  }

  async purgeAudit(before: Date): Promise<number> {
    return this.#writeTx(async (db) => {
      await sql`select set_config(${AUDIT_PURGE_SETTING}, 'on', true)`.execute(db);
      const r = await db.deleteFrom("connector_audit_events").where("at", "<", before).executeTakeFirst();
      return Number(r.numDeletedRows);
    });
  }

  /** Runs fn on this store's transaction, or a new one marked as the controller's. */
  async #writeTx<T>(fn: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    if (this.#inTransaction()) return fn(await this.#writer());
    return this.#db.transaction().execute(async (trx) => {
      await sql`select set_config(${WRITER_SETTING}, 'controller', true)`.execute(trx);
      return fn(trx);
    });
  }

  async transaction<T>(fn: (tx: InstanceStore) => Promise<T>, signal?: AbortSignal): Promise<T> {
    // Already in a transaction: run in it (no savepoint; a throw aborts the outer one).
    if (this.#inTransaction()) return fn(this);
    const lazy = new LazyTransaction(this.#db);
    let result: T;
    try {
      result = await fn(new KyselyInstanceStore(this.#db, lazy, signal));
      throwIfAborted(signal, "database commit");
    } catch (err) {
      await lazy.finish(false).catch(() => {});
      throw err;
    }
    await lazy.finish(true);
    return result;
  }
}

/**
 * The InstanceStore over `db`. Inside `transaction(fn)`, use only the store passed to fn:
 * with PGlite (one connection) a query on the outer store would wait for the transaction.
 */
export function createInstanceStore(db: Kysely<Database>): InstanceStore {
  return new KyselyInstanceStore(db);
}

/** True for a unique-constraint violation (e.g. a second live row for the same uid). */
export function isUniqueViolation(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === "23505";
}
