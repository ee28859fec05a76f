// Admissions per second and SQL statements per call of PgLimiter on PostgreSQL, at 1, 16 and
// 64 concurrent callers spread over two replicas (two pools). Each caller loops admit →
// release with the gateway's hot-path request: three buckets (instance, user, project), a
// slot cap and the breaker. "one instance": every caller on the same instance, user and
// project (the worst contention); "own instance": each caller its own instance and user,
// one shared project. Statements are counted by the server (pg_stat_statements, when the
// server loads it) and by the client (a Kysely plugin). Prints figures; asserts nothing.
//
//   node bench/gateway-limits.ts [--seconds 5] [--callers 1,16,64] [--postgres auto|private|url] [--pg-fast]
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import type { AdmissionRequest } from "../controller/src/gateway/ports.ts";
import { openDatabase } from "../controller/src/store/database.ts";
import { migrateToLatest } from "../controller/src/store/migrations.ts";
import { PgLimiter } from "../controller/src/store/pgLimiter.ts";
import {
  pgDelta,
  readCounters,
  startBenchPostgres,
  type BenchDatabase,
  type BenchPostgres,
  type PgMode,
} from "./lib/postgres.ts";
import { fmtMs, fmtNum, percentile } from "./lib/util.ts";
import { countStatements } from "../test/support/statementCounter.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    callers: { type: "string", default: "1,16,64" },
    postgres: { type: "string", default: "auto" },
    "pg-fast": { type: "boolean", default: false },
  },
});
const seconds = Number(values.seconds);
const callerCounts = values.callers.split(",").map(Number);

interface Row {
  callers: number;
  instances: number;
  admitted: number;
  refused: number;
  perSecond: number;
  p50: number;
  p99: number;
  serverStatements: number | undefined;
  clientStatements: number;
}

function hotPathRequest(run: string, caller: number, shared: boolean, callers: number): AdmissionRequest {
  const own = shared ? "shared" : String(caller);
  const unlimited = { rps: 1_000_000, burst: 1_000_000 };
  return {
    instanceId: `${run}-${own}`,
    buckets: [
      { key: `instance:${run}-${own}`, ...unlimited },
      { key: `user:${run}-${own}`, ...unlimited },
      { key: `project:${run}`, ...unlimited },
    ],
    maxParallel: callers,
    backpressure: "reject",
    queueDepth: 0,
    maxWaitMs: 1000,
    leaseMs: 60_000,
    breaker: { failureThreshold: 5, cooldownMs: 30_000 },
  };
}

async function scenario(
  server: BenchPostgres,
  database: BenchDatabase,
  callers: number,
  shared: boolean,
): Promise<Row> {
  const replicas = await Promise.all(
    [0, 1].map(() => openDatabase({ url: database.url, maxConnections: Math.ceil(callers / 2) })),
  );
  const counted = replicas.map((r) => countStatements(r.db));
  const limiters = replicas.map((r, i) => new PgLimiter({ db: counted[i]!.db, subscribe: r.subscribe }));
  const run = randomUUID().slice(0, 8);
  const loop = async (caller: number, until: number, latencies?: number[]) => {
    const limiter = limiters[caller % 2]!;
    const req = hotPathRequest(run, caller, shared, callers);
    let admitted = 0;
    let refused = 0;
    while (performance.now() < until) {
      const start = performance.now();
      const answer = await limiter.admit(req);
      latencies?.push(performance.now() - start);
      if (!answer.admitted) {
        refused++;
        continue;
      }
      admitted++;
      if (answer.slot) await limiter.release(answer.slot);
    }
    return { admitted, refused };
  };
  try {
    const callersList = [...Array(callers).keys()];
    await Promise.all(callersList.map((i) => loop(i, performance.now() + 500))); // warm-up: pools, plans
    const before = await readCounters(server, database);
    for (const c of counted) c.reset();
    const latencies: number[] = [];
    const start = performance.now();
    const results = await Promise.all(callersList.map((i) => loop(i, start + seconds * 1000, latencies)));
    const elapsedMs = performance.now() - start;
    const clientStatements = counted.reduce((n, c) => n + c.count, 0);
    const after = await readCounters(server, database);
    const admitted = results.reduce((s, r) => s + r.admitted, 0);
    return {
      callers,
      instances: shared ? 1 : callers,
      admitted,
      refused: results.reduce((s, r) => s + r.refused, 0),
      perSecond: admitted / (elapsedMs / 1000),
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      serverStatements: pgDelta(before, after).statements,
      clientStatements,
    };
  } finally {
    for (const l of limiters) await l.close();
    for (const r of replicas) await r.close();
  }
}

function table(rows: Row[]): string {
  const perCall = (n: number | undefined, r: Row) => (n === undefined ? "n/a" : (n / r.admitted).toFixed(2));
  const header = [
    "callers",
    "instances",
    "admits/s",
    "admit p50",
    "admit p99",
    "refused",
    "statements/call (server)",
    "statements/call (client)",
  ];
  const lines = rows.map((r) => [
    String(r.callers),
    String(r.instances),
    fmtNum(r.perSecond),
    fmtMs(r.p50),
    fmtMs(r.p99),
    fmtNum(r.refused),
    perCall(r.serverStatements, r),
    perCall(r.clientStatements, r),
  ]);
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...lines.map(line)].join("\n");
}

const server = await startBenchPostgres(
  values.postgres as PgMode,
  process.env["TEST_DATABASE_URL"],
  values["pg-fast"],
);
const database = await server.createDatabase("gateway_limits");
try {
  const setup = await openDatabase({ url: database.url });
  await migrateToLatest(setup.db);
  await setup.close();
  const rows: Row[] = [];
  for (const callers of callerCounts) {
    for (const shared of callers === 1 ? [true] : [true, false]) {
      rows.push(await scenario(server, database, callers, shared));
    }
  }
  const settings = Object.entries(server.settings)
    .filter(([k]) => ["server_version", "fsync", "synchronous_commit"].includes(k))
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
  process.stdout.write(
    `PgLimiter admit → release, ${seconds} s per row, two replicas; ${server.description}; ${settings}\n` +
      `a call = one admit and one release (the audit write is batched elsewhere)\n\n${table(rows)}\n`,
  );
} finally {
  await database.drop();
  await server.stop();
}
