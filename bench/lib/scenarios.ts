// The scenarios. Each returns plain numbers (the JSON) and never asserts: the report
// compares them with the targets.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from "@kubernetes/client-node";
import { Kysely, PostgresDialect, type Selectable } from "kysely";
import pg from "pg";
import { projectRoot } from "../../controller/src/api/paths.ts";
import { GROUP, VERSION, type Connector, type ConnectorStatus } from "../../controller/src/api/types.ts";
import { objectKey } from "../../controller/src/kube/runtime/informer.ts";
import { KubeConnectorWriter, PLURALS } from "../../controller/src/kube/resources.ts";
import { createInstanceStore, fromInstanceRow } from "../../controller/src/store/instanceStore.ts";
import { migrateToLatest } from "../../controller/src/store/migrations.ts";
import type { ConnectorInstancesTable, Database } from "../../controller/src/store/schema.ts";
import type { ControlPlane } from "../../test/support/controlPlane.ts";
import type { HttpTarget } from "../../test/support/httpTarget.ts";
import type { ControllerProcess } from "../../test/support/controllerProcess.ts";
import { sleep } from "../../test/support/wait.ts";
import {
  figures as processFigures,
  histogram,
  histogramQuantile,
  settle,
  startBenchController,
  sumSeries,
} from "./controllerProcess.ts";
import {
  apiserverRequests,
  benchConnector,
  createConnector,
  kubeConfig,
  requestDelta,
  STATUS_PATCH,
  type ReadyTracker,
} from "./kube.ts";
import {
  pgDelta,
  readCounters,
  type BenchDatabase,
  type BenchPostgres,
  type PgCounters,
  type PgDelta,
} from "./postgres.ts";
import { machineBusySeconds, procStat, treeCpuSeconds } from "./proc.ts";
import { inParallel, retrying, since, summary } from "./util.ts";

export interface Env {
  n: number;
  cp: ControlPlane;
  kc: KubeConfig;
  pg: BenchPostgres;
  db: BenchDatabase;
  target: HttpTarget;
  tracker: ReadyTracker;
  profileDir?: string;
  /** The controller under test's entry file (default: this checkout's controller/src/main.ts). */
  controllerEntry?: string;
  /** Flags for the controller's node (--controller-node-options). */
  nodeOptions?: string[];
  log(msg: string): void;
}

// ---- CPU of the servers ----------------------------------------------------------------------

export interface ServerCpu {
  apiserver?: number;
  etcd?: number;
  postgres?: number;
  bench: number;
  /** Everything this benchmark runs: the bench process and all its descendants. */
  benchTree?: number;
  /** The whole machine (busy time of all CPUs). */
  machine?: number;
  /** machine − benchTree: what other people's processes used meanwhile (the noise). */
  others?: number;
}

function controlPlanePids(cp: ControlPlane): { apiserver?: number; etcd?: number } {
  let pids: number[] = [];
  try {
    pids = JSON.parse(readFileSync(join(cp.dir, "pids"), "utf8")) as number[];
  } catch {
    return {};
  }
  const out: { apiserver?: number; etcd?: number } = {};
  for (const pid of pids) {
    const s = procStat(pid);
    if (s?.comm === "kube-apiserver") out.apiserver = pid;
    if (s?.comm === "etcd") out.etcd = pid;
  }
  return out;
}

export function serverCpu(env: Env): ServerCpu {
  const pids = controlPlanePids(env.cp);
  const cpu = (pid: number | undefined) => (pid === undefined ? undefined : procStat(pid)?.cpuSeconds);
  const u = process.cpuUsage();
  const out: ServerCpu = { bench: (u.user + u.system) / 1e6 };
  const a = cpu(pids.apiserver);
  const e = cpu(pids.etcd);
  const p = env.pg.postmasterPid === undefined ? undefined : treeCpuSeconds(env.pg.postmasterPid);
  if (a !== undefined) out.apiserver = a;
  if (e !== undefined) out.etcd = e;
  if (p !== undefined) out.postgres = p;
  const tree = treeCpuSeconds(process.pid);
  if (tree !== undefined) out.benchTree = tree;
  out.machine = machineBusySeconds();
  return out;
}

function cpuDelta(a: ServerCpu, b: ServerCpu): ServerCpu {
  const d = (k: keyof ServerCpu) =>
    a[k] === undefined || b[k] === undefined ? undefined : round(b[k]! - a[k]!, 2);
  const out: ServerCpu = { bench: d("bench")! };
  for (const k of ["apiserver", "etcd", "postgres", "benchTree", "machine"] as const) {
    const v = d(k);
    if (v !== undefined) out[k] = v;
  }
  if (out.machine !== undefined && out.benchTree !== undefined)
    out.others = round(Math.max(0, out.machine - out.benchTree), 2);
  return out;
}

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Counters that the idle backends may not have flushed yet: read until two readings agree. */
async function settledCounters(env: Env): Promise<PgCounters> {
  let prev = await readCounters(env.pg, env.db);
  for (let i = 0; i < 12; i++) {
    await sleep(1000);
    const next = await readCounters(env.pg, env.db);
    if (JSON.stringify(next.database) === JSON.stringify(prev.database)) return next;
    prev = next;
  }
  return prev;
}

/** The controller under test on this scenario's cluster and database. */
function controllerFor(
  env: Env,
  concurrency: number,
  extra: { cpuProfileDir?: string; resyncPeriod?: string },
): ControllerProcess {
  return startBenchController({
    ...(env.controllerEntry ? { entry: env.controllerEntry } : {}),
    ...(env.nodeOptions ? { nodeOptions: env.nodeOptions } : {}),
    kubeconfig: env.cp.kubeconfigPath,
    databaseUrl: env.db.url,
    concurrency,
    ...extra,
  });
}

// ---- 1. cold start --------------------------------------------------------------------------

export interface ColdStart {
  n: number;
  concurrency: number;
  /** Spawn to every Connector Ready (observedGeneration == generation), ms. */
  allReadyMs: number;
  firstReadyMs: number;
  cachesSyncedMs: number;
  workersStartedMs: number;
  /** Spawn to the controller having nothing left to do, ms. */
  settledMs: number;
  apiRequests: Record<string, number>;
  statusWrites: number;
  sql: PgDelta;
  peakRssBytes: number;
  rssBytesAtEnd: number;
  /** V8 heap used / total and external memory at the end (the controller's own /metrics). */
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
  cpuSeconds: number;
  serverCpuSeconds: ServerCpu;
  reconciles: number;
  probes: number;
  warnings: number;
  logLines: number;
  profile?: string;
}

export async function coldStart(env: Env, concurrency: number, profile: boolean): Promise<ColdStart> {
  const { n } = env;
  const api0 = await apiserverRequests(env.cp);
  const pg0 = await readCounters(env.pg, env.db);
  const cpu0 = serverCpu(env);
  const profileDir = profile && env.profileDir ? env.profileDir : undefined;
  const ctrl = controllerFor(env, concurrency, profileDir ? { cpuProfileDir: profileDir } : {});
  try {
    const timeoutMs = Math.max(180_000, n * 150);
    let timer: NodeJS.Timeout | undefined;
    const progress = setInterval(
      () =>
        env.log(
          `  … ${env.tracker.readyAt.size}/${n} Ready after ${(since(ctrl.spawnedAt) / 1000).toFixed(0)} s`,
        ),
      15_000,
    );
    const allReadyAt = await Promise.race([
      env.tracker.whenCount(n),
      ctrl.exited.then((code) => {
        throw new Error(`the controller exited (${JSON.stringify(code)}):\n${ctrl.tail(60)}`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`only ${env.tracker.readyAt.size}/${n} Ready after ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]).finally(() => {
      clearTimeout(timer);
      clearInterval(progress);
    });
    await settle(ctrl);
    const settledAt = performance.now();
    const figures = processFigures(ctrl);
    const m = await ctrl.metrics();
    const cpu1 = serverCpu(env);
    await ctrl.stop();
    const api1 = await apiserverRequests(env.cp);
    const pg1 = await settledCounters(env);
    const apiRequests = requestDelta(api0, api1);
    const firstReady = Math.min(...env.tracker.readyAt.values());
    const profileFile = profileDir ? newestProfile(profileDir, ctrl.spawnedAtWall) : undefined;
    return {
      n,
      concurrency,
      allReadyMs: allReadyAt - ctrl.spawnedAt,
      firstReadyMs: firstReady - ctrl.spawnedAt,
      cachesSyncedMs: (ctrl.marks.get("caches synced") ?? NaN) - ctrl.spawnedAt,
      workersStartedMs: (ctrl.marks.get("controller started") ?? NaN) - ctrl.spawnedAt,
      settledMs: settledAt - ctrl.spawnedAt,
      apiRequests,
      statusWrites: apiRequests[STATUS_PATCH] ?? 0,
      sql: pgDelta(pg0, pg1),
      peakRssBytes: figures.peakRss,
      rssBytesAtEnd: figures.rss,
      heapUsedBytes: sumSeries(m, "nodejs_heap_size_used_bytes"),
      heapTotalBytes: sumSeries(m, "nodejs_heap_size_total_bytes"),
      externalBytes: sumSeries(m, "nodejs_external_memory_bytes"),
      cpuSeconds: figures.cpuSeconds,
      serverCpuSeconds: cpuDelta(cpu0, cpu1),
      reconciles: sumSeries(m, "controller_runtime_reconcile_total"),
      probes: sumSeries(m, "connector_probe_total"),
      warnings: ctrl.warnings.length,
      logLines: ctrl.lineCount,
      ...(profileFile ? { profile: profileFile } : {}),
    };
  } finally {
    await ctrl.stop();
  }
}

/** The .cpuprofile the controller wrote on exit. */
function newestProfile(dir: string, after: number): string | undefined {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".cpuprofile"))
    .map((f) => ({ f: join(dir, f), t: statSync(join(dir, f)).mtimeMs }))
    .filter((x) => x.t >= after)
    .sort((a, b) => b.t - a.t);
  return files[0]?.f;
}

// ---- 2. the floor ---------------------------------------------------------------------------

export interface FloorPass {
  ms: number;
  requests: number;
}

export interface Floor {
  n: number;
  concurrency: number;
  /**
   * N merge patches of /status through the controller's own writer: one pass with stock
   * client-node (a new TLS connection per request), one with connections reused (the floor).
   */
  statusPatches: { stock: FloorPass; reused: FloorPass };
  statusMs: number;
  /** N finalizer merge patches of the object (add, remove), what a cold start also does. */
  finalizerPatches?: FloorPass[];
  finalizerMs?: number;
  /** N single-statement INSERT … ON CONFLICT DO UPDATE … RETURNING * (plain pg, pool of `concurrency`). */
  upsertMs: number;
  /** N inserts through the project's store (its own transaction: BEGIN, set_config, INSERT, COMMIT). */
  storeInsertMs: number;
  storeInsertStatements?: number;
  serverCpuSeconds: ServerCpu;
}

/** The status the controller wrote, with one message changed: a real write of the same size. */
function touched(status: ConnectorStatus): ConnectorStatus {
  const s = structuredClone(status);
  const ready = s.conditions?.find((c) => c.type === "Ready");
  if (ready) ready.message = `${ready.message} (bench floor)`;
  return s;
}

async function statusPass(
  env: Env,
  writer: KubeConnectorWriter,
  items: { from: Connector; to: ConnectorStatus }[],
  concurrency: number,
): Promise<FloorPass> {
  const before = await apiserverRequests(env.cp);
  const start = performance.now();
  await inParallel(items, concurrency, ({ from, to }) =>
    retrying(() => writer.writeStatus(from, to), `status patch ${objectKey(from)}`),
  );
  const ms = since(start);
  const after = await apiserverRequests(env.cp);
  return { ms, requests: requestDelta(before, after)[STATUS_PATCH] ?? 0 };
}

async function finalizerPass(
  env: Env,
  api: CustomObjectsApi,
  objs: Connector[],
  finalizers: (c: Connector) => string[],
  concurrency: number,
): Promise<FloorPass> {
  const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
  const before = await apiserverRequests(env.cp);
  const start = performance.now();
  await inParallel(objs, concurrency, (c) =>
    retrying(
      () =>
        api.patchNamespacedCustomObject(
          {
            group: GROUP,
            version: VERSION,
            plural: PLURALS.Connector,
            namespace: c.metadata.namespace!,
            name: c.metadata.name,
            body: { metadata: { finalizers: finalizers(c) } },
            fieldManager: "bench",
          },
          merge,
        ),
      `finalizer patch ${objectKey(c)}`,
    ).then(() => undefined),
  );
  const ms = since(start);
  const after = await apiserverRequests(env.cp);
  return { ms, requests: requestDelta(before, after)["connectors PATCH"] ?? 0 };
}

const UPSERT_COLUMNS = [
  "namespace",
  "name",
  "uid",
  "owner",
  "project_id",
  "type",
  "type_version",
  "config",
  "config_schema_version",
  "credentials_ref",
  "policy",
  "limits",
  "rate_limit_policy",
  "enabled",
  "state",
  "last_success_at",
  "health_checked_at",
  "applied_generation",
  "spec_hash",
] as const;
const JSON_COLUMNS = new Set(["owner", "config", "credentials_ref", "policy", "limits", "rate_limit_policy"]);

export async function floor(env: Env, concurrency: number, opts: { finalizers: boolean }): Promise<Floor> {
  const cpu0 = serverCpu(env);
  const objs = env.tracker.informer.list().filter((c) => c.status);
  if (objs.length < env.n) throw new Error(`floor: only ${objs.length}/${env.n} Connectors have a status`);
  // The controller's own writer: the same client, body and field manager as its status
  // writes; first as the controller has it, then reusing connections.
  env.log(`  floor: ${objs.length} status patches ×2 at concurrency ${concurrency}`);
  const changed = objs.map((c) => ({ from: c, to: touched(c.status!) }));
  const stock = await statusPass(
    env,
    new KubeConnectorWriter(kubeConfig(env.cp, false)),
    changed,
    concurrency,
  );
  const restore = changed.map(({ from, to }) => ({ from: { ...from, status: to }, to: from.status! }));
  const reused = await statusPass(env, new KubeConnectorWriter(env.kc), restore, concurrency);

  let finalizerPatches: FloorPass[] | undefined;
  if (opts.finalizers) {
    env.log(`  floor: ${objs.length} finalizer patches ×2`);
    const api = env.kc.makeApiClient(CustomObjectsApi);
    const extra = "bench.cynodeai.io/floor";
    const f1 = await finalizerPass(
      env,
      api,
      objs,
      (c) => [...(c.metadata.finalizers ?? []), extra],
      concurrency,
    );
    const f2 = await finalizerPass(env, api, objs, (c) => c.metadata.finalizers ?? [], concurrency);
    finalizerPatches = [f1, f2];
  }

  // Upserts into a scratch database with the same schema, from the rows the cold start wrote.
  env.log(`  floor: ${objs.length} upserts and store inserts`);
  const source = new pg.Pool({ connectionString: env.db.url, max: 1 });
  const rows = (
    await source.query<Selectable<ConnectorInstancesTable>>(
      "select * from connector_instances where deleted_at is null",
    )
  ).rows;
  await source.end();
  const scratch = await env.pg.createDatabase("floor");
  const scratchPool = new pg.Pool({ connectionString: scratch.url, max: concurrency });
  scratchPool.on("error", () => {}); // idle connections end when the scratch database is dropped
  const scratchDb = new Kysely<Database>({ dialect: new PostgresDialect({ pool: scratchPool }) });
  let upsertMs = NaN;
  let storeInsertMs = NaN;
  let storeInsertStatements: number | undefined;
  try {
    await migrateToLatest(scratchDb);
    // Marked as the controller marks its own writes, so the change-notify trigger skips them too.
    const pool = new pg.Pool({
      connectionString: scratch.url,
      max: concurrency,
      options: "-c connector.writer=controller",
    });
    pool.on("error", () => {});
    const cols = UPSERT_COLUMNS.join(", ");
    const params = UPSERT_COLUMNS.map((_, i) => `$${i + 1}`).join(", ");
    const updates = UPSERT_COLUMNS.filter((c) => !["namespace", "name", "uid"].includes(c))
      .map((c) => `${c} = excluded.${c}`)
      .join(", ");
    const text =
      `insert into connector_instances (${cols}) values (${params}) ` +
      `on conflict (uid) where deleted_at is null do update set ${updates}, updated_at = now() returning *`;
    const values = (r: Record<string, unknown>) =>
      UPSERT_COLUMNS.map((c) => (JSON_COLUMNS.has(c) && r[c] !== null ? JSON.stringify(r[c]) : r[c]));
    // Warm the pool (connections are not what is measured).
    await Promise.all(Array.from({ length: concurrency }, () => pool.query("select 1")));
    let start = performance.now();
    await inParallel(rows, concurrency, async (r) => {
      await pool.query({ name: "bench-upsert", text, values: values(r) });
    });
    upsertMs = since(start);
    await pool.query("truncate connector_instances");
    await pool.end();

    const before = await readCounters(env.pg, scratch);
    const store = createInstanceStore(scratchDb);
    await Promise.all(Array.from({ length: concurrency }, () => store.findByUid("warm-up")));
    start = performance.now();
    await inParallel(rows, concurrency, async (r) => {
      const { id: _id, createdAt: _c, updatedAt: _u, deletedAt: _d, ...row } = fromInstanceRow(r);
      await store.insert(row);
    });
    storeInsertMs = since(start);
    const after = await readCounters(env.pg, scratch);
    storeInsertStatements = pgDelta(before, after).statements;
  } finally {
    await scratchDb.destroy();
    if (!scratchPool.ended) await scratchPool.end();
    await scratch.drop();
  }
  const mins = (ps: FloorPass[]) => Math.min(...ps.map((p) => p.ms));
  return {
    n: objs.length,
    concurrency,
    statusPatches: { stock, reused },
    statusMs: reused.ms,
    ...(finalizerPatches ? { finalizerPatches, finalizerMs: mins(finalizerPatches) } : {}),
    upsertMs,
    storeInsertMs,
    ...(storeInsertStatements !== undefined ? { storeInsertStatements } : {}),
    serverCpuSeconds: cpuDelta(cpu0, serverCpu(env)),
  };
}

// ---- a controller for the steady-state scenarios ---------------------------------------------

export interface WarmStart {
  /** Spawn to N reconciles finished and the queue drained, ms. */
  reconciledMs: number;
  reconciles: number;
  statusWrites: number;
  apiRequests: Record<string, number>;
  rowsWritten: number;
  auditRows: number;
}

async function dbNow(db: BenchDatabase): Promise<Date> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    return (await c.query<{ now: Date }>("select clock_timestamp() as now")).rows[0]!.now;
  } finally {
    await c.end();
  }
}

/** Rows the controller wrote since `t` (by the timestamps every write sets), exactly. */
async function rowsWrittenSince(db: BenchDatabase, t: Date) {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    const r = await c.query<{ written: string; checked: string; audit: string }>(
      `select (select count(*) from connector_instances where updated_at > $1 or created_at > $1) as written,
              (select count(*) from connector_instances where health_checked_at > $1) as checked,
              (select count(*) from connector_audit_events where at > $1) as audit`,
      [t],
    );
    const row = r.rows[0]!;
    return { written: Number(row.written), healthChecked: Number(row.checked), audit: Number(row.audit) };
  } finally {
    await c.end();
  }
}

/** Starts a controller on the existing Connectors and waits for its first pass (N no-op reconciles). */
export async function warmStart(
  env: Env,
  concurrency: number,
  resyncPeriod?: string,
): Promise<{ ctrl: ControllerProcess; warm: WarmStart }> {
  const total = env.tracker.informer.size;
  const t0 = await dbNow(env.db);
  const api0 = await apiserverRequests(env.cp);
  const ctrl = controllerFor(env, concurrency, resyncPeriod ? { resyncPeriod } : {});
  try {
    await ctrl.waitFor("controller started");
    const deadline = Date.now() + Math.max(120_000, total * 60);
    for (;;) {
      const m = await ctrl.metrics();
      if (sumSeries(m, "controller_runtime_reconcile_total") >= total) break;
      if (Date.now() > deadline) throw new Error("the warm start did not reconcile every Connector in time");
      await sleep(250);
    }
    await settle(ctrl, 500);
    const reconciledMs = since(ctrl.spawnedAt);
    const m = await ctrl.metrics();
    const apiRequests = requestDelta(api0, await apiserverRequests(env.cp));
    const rows = await rowsWrittenSince(env.db, t0);
    return {
      ctrl,
      warm: {
        reconciledMs,
        reconciles: sumSeries(m, "controller_runtime_reconcile_total"),
        statusWrites: apiRequests[STATUS_PATCH] ?? 0,
        apiRequests,
        rowsWritten: rows.written,
        auditRows: rows.audit,
      },
    };
  } catch (err) {
    await ctrl.stop();
    throw err;
  }
}

// ---- 4. quiet steady state ---------------------------------------------------------------

export interface Quiet {
  n: number;
  resyncPeriod: string;
  windowMs: number;
  /** Reconciles in the window / Connectors: how many resync passes ran. */
  passes: number;
  statusWrites: number;
  apiRequests: Record<string, number>;
  /** Instance rows whose updated_at or created_at moved in the window. */
  instanceRowsWritten: number;
  /** n_tup_ins + n_tup_upd on connector_instances (pg_stat_user_tables, read after the controller exited). */
  instanceTupleWrites: number;
  /** Health-check bookkeeping: rows whose health_checked_at moved (a probe ran). */
  healthChecked: number;
  auditRows: number;
  sql: PgDelta;
  warmStart: WarmStart;
}

export async function quiet(env: Env, concurrency: number, resyncPeriod: string, passes = 3): Promise<Quiet> {
  const periodMs = Number(/^(\d+)s$/.exec(resyncPeriod)?.[1] ?? "20") * 1000;
  const { ctrl, warm } = await warmStart(env, concurrency, resyncPeriod);
  try {
    const total = env.tracker.informer.size;
    const t0 = await dbNow(env.db);
    const api0 = await apiserverRequests(env.cp);
    const pg0 = await readCounters(env.pg, env.db);
    const r0 = sumSeries(await ctrl.metrics(), "controller_runtime_reconcile_total");
    const start = performance.now();
    env.log(`  quiet: ${passes} resync periods of ${resyncPeriod} with nothing changed`);
    // Resyncs fire every period ±10%: wait for `passes` full passes (or 1.5× the time they should take).
    const deadline = start + passes * periodMs * 1.5 + 30_000;
    let reconciles = 0;
    while (performance.now() < deadline) {
      await sleep(2000);
      reconciles = sumSeries(await ctrl.metrics(), "controller_runtime_reconcile_total") - r0;
      if (reconciles >= passes * total) break;
    }
    await settle(ctrl, 500);
    reconciles = sumSeries(await ctrl.metrics(), "controller_runtime_reconcile_total") - r0;
    const windowMs = since(start);
    const api1 = await apiserverRequests(env.cp);
    const rows = await rowsWrittenSince(env.db, t0);
    await ctrl.stop();
    const pg1 = await settledCounters(env);
    const apiRequests = requestDelta(api0, api1);
    const sql = pgDelta(pg0, pg1);
    const inst = sql.tables.connector_instances ?? {};
    return {
      n: total,
      resyncPeriod,
      windowMs,
      passes: round(reconciles / total, 2),
      statusWrites: apiRequests[STATUS_PATCH] ?? 0,
      apiRequests,
      instanceRowsWritten: rows.written,
      instanceTupleWrites: (inst.n_tup_ins ?? 0) + (inst.n_tup_upd ?? 0),
      healthChecked: rows.healthChecked,
      auditRows: rows.audit,
      sql,
      warmStart: warm,
    };
  } finally {
    await ctrl.stop();
  }
}

// ---- 3. apply → Ready, and 5. drift ------------------------------------------------------------

export interface ApplyLatency {
  existing: number;
  applies: number;
  /** Create request sent → the bench's watch sees Ready for that generation, ms. */
  latencyMs: ReturnType<typeof summary>;
  /** The create request alone, ms. */
  createMs: ReturnType<typeof summary>;
  /** The probe's own time (connector_probe_duration_seconds over these applies), ms. */
  probeMs: { mean: number; p50: number; p99: number; count: number };
  /** The controller's reconcile time over these applies (histogram), ms. */
  reconcileMs: { mean: number; p50: number; p99: number; count: number };
  statusWrites: number;
  apiRequests: Record<string, number>;
}

function histogramFigures(before: Map<string, number>, after: Map<string, number>, name: string) {
  const count = sumSeries(after, `${name}_count`) - sumSeries(before, `${name}_count`);
  const sum = sumSeries(after, `${name}_sum`) - sumSeries(before, `${name}_sum`);
  const hb = histogram(before, name);
  const ha = histogram(after, name);
  return {
    count,
    mean: count ? (sum / count) * 1000 : NaN,
    p50: histogramQuantile(hb, ha, 0.5) * 1000,
    p99: histogramQuantile(hb, ha, 0.99) * 1000,
  };
}

export async function applyLatency(
  env: Env,
  ctrl: ControllerProcess,
  applies: number,
  timeoutMs = 60_000,
): Promise<ApplyLatency> {
  const api = env.kc.makeApiClient(CustomObjectsApi);
  const existing = env.tracker.informer.size;
  const m0 = await ctrl.metrics();
  const api0 = await apiserverRequests(env.cp);
  const latencies: number[] = [];
  const creates: number[] = [];
  env.log(`  apply → Ready: ${applies} applies one after another, ${existing} Connectors exist`);
  for (let i = 0; i < applies; i++) {
    const c = benchConnector(i, env.target.url, `apply-${existing}`);
    const key = objectKey(c);
    const start = performance.now();
    const ready = env.tracker.whenReady(key);
    await createConnector(api, c);
    creates.push(since(start));
    let timer: NodeJS.Timeout | undefined;
    const at = await Promise.race([
      ready,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${key} not Ready after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
    latencies.push(at - start);
  }
  await settle(ctrl, 500);
  const m1 = await ctrl.metrics();
  const apiRequests = requestDelta(api0, await apiserverRequests(env.cp));
  return {
    existing,
    applies,
    latencyMs: summary(latencies),
    createMs: summary(creates),
    probeMs: histogramFigures(m0, m1, "connector_probe_duration_seconds"),
    reconcileMs: histogramFigures(m0, m1, "controller_runtime_reconcile_time_seconds"),
    statusWrites: apiRequests[STATUS_PATCH] ?? 0,
    apiRequests,
  };
}

export interface Drift {
  tries: number;
  /** UPDATE committed → the bench sees the row corrected, ms. */
  latencyMs: ReturnType<typeof summary>;
  corrected: number;
  pollIntervalMs: number;
}

export async function drift(env: Env, tries: number, pollIntervalMs = 2): Promise<Drift> {
  const c = new pg.Client({ connectionString: env.db.url, application_name: "bench-drift" });
  await c.connect();
  const latencies: number[] = [];
  try {
    const rows = (
      await c.query<{ id: string; timeout: number }>(
        `select id, (config->>'timeoutMs')::int as timeout from connector_instances
          where deleted_at is null and config ? 'timeoutMs' order by random() limit $1`,
        [tries],
      )
    ).rows;
    env.log(`  drift: ${rows.length} manual UPDATEs, each polled until corrected`);
    for (const row of rows) {
      const start = performance.now();
      await c.query(
        `update connector_instances set config = config || jsonb_build_object('timeoutMs', $2::int) where id = $1`,
        [row.id, row.timeout + 1],
      );
      const deadline = start + 30_000;
      for (;;) {
        const r = await c.query<{ t: number }>(
          "select (config->>'timeoutMs')::int as t from connector_instances where id = $1",
          [row.id],
        );
        if (r.rows[0]?.t === row.timeout) {
          latencies.push(since(start));
          break;
        }
        if (performance.now() > deadline) break;
        await sleep(pollIntervalMs);
      }
      await sleep(20);
    }
  } finally {
    await c.end();
  }
  return { tries, latencyMs: summary(latencies), corrected: latencies.length, pollIntervalMs };
}

// ---- 6. Vault --------------------------------------------------------------------------------

/** Whether main.ts hands the reconciler a secrets resolver yet. */
export function secretsWired(): boolean {
  const main = readFileSync(join(projectRoot, "controller/src/main.ts"), "utf8");
  return /from "\.\/secrets\//.test(main) && /\bsecrets\s*[:,]/.test(main);
}
