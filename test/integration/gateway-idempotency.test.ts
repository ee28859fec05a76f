// PgIdempotencyStore as two gateway replicas share it: separate pools on a real PostgreSQL
// server, or two stores on the one PGlite database.
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IdempotencyScope, StoredOutcome } from "../../controller/src/gateway/ports.ts";
import { PgIdempotencyStore } from "../../controller/src/store/idempotency.ts";
import { migrateToLatest } from "../../controller/src/store/migrations.ts";
import { openReplicaDatabases, type ReplicaDatabases } from "../support/replicaDatabases.ts";

const TTL = 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let n = 0;
function scope(): IdempotencyScope {
  return { namespace: "team-a", name: "mail", operation: "send", key: `key-${++n}-${Date.now()}` };
}

const outcome: StoredOutcome = {
  status: 202,
  body: { metadata: { requestId: "r-1" }, data: { queued: true }, warnings: [] },
  jobId: "0b6f1a2e-8d4f-4c55-9d7e-3f1f2a9c0e11",
};

const backends = [
  { name: "PostgreSQL", dialect: "pg" as const },
  { name: "PGlite", dialect: "pglite" as const },
];

describe.each(backends)("gateway idempotency on $name", (backend) => {
  let env: ReplicaDatabases;
  let a: PgIdempotencyStore;
  let b: PgIdempotencyStore;
  /** Polls so seldom that only a NOTIFY can wake a wait in time. */
  let deaf: PgIdempotencyStore;

  beforeAll(async () => {
    env = await openReplicaDatabases(backend.dialect);
    await migrateToLatest(env.a.db);
    a = new PgIdempotencyStore(env.a);
    b = new PgIdempotencyStore(env.b, { pollMs: 100 });
    deaf = new PgIdempotencyStore(env.b, { pollMs: 600_000 });
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close(), deaf?.close()]);
    await env?.close();
  });

  it("answers the same key with the same input by replaying the stored outcome", async () => {
    const s = scope();
    expect(await a.claim(s, "hash-1", TTL)).toEqual({ kind: "new" });
    expect(await b.claim(s, "hash-1", TTL)).toEqual({ kind: "in_progress" });
    await a.complete(s, outcome);
    const xmax = () =>
      sql<{ xmax: string }>`select xmax::text from gateway_idempotency where key = ${s.key}`.execute(
        env.a.db,
      );
    const before = (await xmax()).rows;
    expect(await b.claim(s, "hash-1", TTL)).toEqual({ kind: "replay", outcome });
    expect((await xmax()).rows).toEqual(before); // a replay neither locks nor writes the record
    const { jobId: _, ...sync } = outcome;
    const other = scope();
    await b.claim(other, "hash-1", TTL);
    await b.complete(other, sync);
    expect(await a.claim(other, "hash-1", TTL)).toEqual({ kind: "replay", outcome: sync });
  });

  it("refuses the same key with a different input, in progress or completed", async () => {
    const s = scope();
    await a.claim(s, "hash-1", TTL);
    expect(await b.claim(s, "hash-2", TTL)).toEqual({ kind: "conflict" });
    await a.complete(s, outcome);
    expect(await b.claim(s, "hash-2", TTL)).toEqual({ kind: "conflict" });
    // The key is scoped: the same key on another operation is another record.
    expect(await b.claim({ ...s, operation: "readInbox" }, "hash-2", TTL)).toEqual({ kind: "new" });
  });

  it("gives exactly one of many concurrent claims, across replicas, the key", async () => {
    const s = scope();
    const claims = await Promise.all(
      Array.from({ length: 24 }, (_, i) => (i % 2 === 0 ? a : b).claim(s, "hash-1", TTL)),
    );
    expect(claims.filter((c) => c.kind === "new")).toHaveLength(1);
    expect(claims.filter((c) => c.kind === "in_progress")).toHaveLength(23);
  });

  it("wakes a wait on an in-progress claim when another replica completes it (NOTIFY)", async () => {
    const s = scope();
    await a.claim(s, "hash-1", TTL);
    const started = Date.now();
    const waiting = deaf.wait(s, 10_000);
    await sleep(300);
    await a.complete(s, outcome);
    expect(await waiting).toEqual(outcome);
    expect(Date.now() - started).toBeLessThan(10_000); // the deadline, not a speed figure
  });

  it("finds a completion by polling when no NOTIFY came", async () => {
    const s = scope();
    await a.claim(s, "hash-1", TTL);
    const waiting = b.wait(s, 10_000);
    await sleep(200);
    // Written behind the store's back: no NOTIFY.
    await sql`update gateway_idempotency set state = 'completed', status = 200, body = '{"ok":1}'::jsonb,
                lease_until = null where key = ${s.key}`.execute(env.a.db);
    expect(await waiting).toEqual({ status: 200, body: { ok: 1 } });
  });

  it("gives up a wait at its bound, or when its signal aborts", async () => {
    const s = scope();
    await a.claim(s, "hash-1", TTL);
    expect(await b.wait(s, 300)).toBeUndefined();
    const ac = new AbortController();
    const waiting = b.wait(s, 60_000, ac.signal);
    ac.abort();
    expect(await waiting).toBeUndefined();
    expect(await b.claim(s, "hash-1", TTL)).toEqual({ kind: "in_progress" });
  });

  it("lets a released key be claimed again, and tells its waiters at once", async () => {
    const s = scope();
    await a.claim(s, "hash-1", TTL);
    const waiting = deaf.wait(s, 10_000);
    await sleep(200);
    await a.release(s);
    expect(await waiting).toBeUndefined();
    expect(await b.claim(s, "hash-2", TTL)).toEqual({ kind: "new" });
    // A completed record is not released: its duplicates still get the outcome.
    await b.complete(s, outcome);
    await b.release(s);
    expect(await a.claim(s, "hash-2", TTL)).toEqual({ kind: "replay", outcome });
  });

  it("frees a key once its TTL passed, for any input, and sweeps expired records", async () => {
    const s = scope();
    await a.claim(s, "hash-1", 300);
    await a.complete(s, outcome);
    expect(await b.claim(s, "hash-2", TTL)).toEqual({ kind: "conflict" });
    await sleep(400);
    expect(await b.claim(s, "hash-2", TTL)).toEqual({ kind: "new" });

    const gone = scope();
    await a.claim(gone, "hash-1", 50);
    await sleep(100);
    expect(await a.sweep()).toBeGreaterThanOrEqual(1);
    const left = await sql<{
      key: string;
    }>`select key from gateway_idempotency where key = ${gone.key}`.execute(env.a.db);
    expect(left.rows).toEqual([]);
    expect(await a.sweep()).toBe(0);
  });

  it("gives exactly one of many concurrent claims of an expired key the key, and nobody its old outcome", async () => {
    const s = scope();
    await a.claim(s, "hash-1", 200);
    await a.complete(s, outcome);
    await sleep(300);
    const claims = await Promise.all(
      Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? a : b).claim(s, "hash-1", TTL)),
    );
    expect(claims.filter((c) => c.kind === "new")).toHaveLength(1);
    expect(claims.filter((c) => c.kind === "in_progress")).toHaveLength(15);
  });

  it("lets the same request take over a claim whose claimer died once its lease passed", async () => {
    const s = scope();
    expect(await a.claim(s, "hash-1", TTL, 300)).toEqual({ kind: "new" }); // and then a dies
    expect(await b.claim(s, "hash-1", TTL)).toEqual({ kind: "in_progress" });
    const waiting = b.wait(s, 10_000);
    await sleep(400);
    expect(await waiting).toBeUndefined(); // the lease passed: the waiter may claim
    expect(await b.claim(s, "hash-2", TTL)).toEqual({ kind: "conflict" }); // still bound to its input
    expect(await b.claim(s, "hash-1", TTL)).toEqual({ kind: "new" });
    await b.complete(s, outcome);
    expect(await a.claim(s, "hash-1", TTL)).toEqual({ kind: "replay", outcome });
  });
});
