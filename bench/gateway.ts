// The gateway's hot path, end to end: sync invocations of `http fetch` against a loopback
// target through 1 and 2 gateway replicas (separate processes, compiled by default), driven
// by a load generator in another process (bench/lib/load.ts) at 1, 16 and 64 concurrent
// callers. For each: invocations/s, p50/p99 latency and the latency added over calling the
// target directly at the same concurrency, PostgreSQL statements per invocation
// (pg_stat_statements on a private server, less what the idle replicas run on their own) and
// the replicas' RSS. Then the added latency at a fixed 500 invocations/s, idempotent replays
// (the same key again: the stored answer), and async jobs (deliverEvent) per second to
// succeeded. Prints Markdown tables; asserts nothing.
//
//   make build && node bench/gateway.ts [--build dist|ts] [--seconds 10] [--callers 1,16,64]
//        [--replicas 1,2] [--rate 500] [--jobs 2000] [--profile]
import { execFile, execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { projectRoot } from "../controller/src/api/paths.ts";
import { apply, applyCatalog, ensureNamespace, kubectlOk } from "../test/support/cluster.ts";
import { httpConnector, waitReady } from "../test/support/connectors.ts";
import { startControlPlane } from "../test/support/controlPlane.ts";
import { ControllerProcess } from "../test/support/controllerProcess.ts";
import { GatewayProcess } from "../test/support/gatewayProcess.ts";
import { startHttpTarget } from "../test/support/httpTarget.ts";
import { withClient } from "../test/support/postgres.ts";
import {
  pgDelta,
  readCounters,
  startBenchPostgres,
  type BenchDatabase,
  type BenchPostgres,
} from "./lib/postgres.ts";
import { procMemory } from "./lib/proc.ts";
import { fmtMB, fmtMs, fmtNum, mark, sleep } from "./lib/util.ts";

const { values } = parseArgs({
  options: {
    build: { type: "string", default: "dist" },
    seconds: { type: "string", default: "10" },
    callers: { type: "string", default: "1,16,64" },
    replicas: { type: "string", default: "1,2" },
    rate: { type: "string", default: "500" },
    jobs: { type: "string", default: "2000" },
    profile: { type: "boolean", default: false },
  },
});
const SECONDS = Number(values.seconds);
const CALLERS = values.callers.split(",").map(Number);
const REPLICAS = values.replicas.split(",").map(Number);
const RATE = Number(values.rate);
const JOBS = Number(values.jobs);
const NS = "bench-gw";
const log = (msg: string) => process.stderr.write(`[gateway bench] ${msg}\n`);
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");

interface LoadResult {
  requests: number;
  statuses: Record<string, number>;
  perSecond: number;
  p50: number;
  p99: number;
}

/**
 * bench/lib/load.ts in a process of its own, awaited: the target answers in this process, so
 * its event loop must stay free while the load runs.
 */
async function runLoad(
  urls: string[],
  path: string,
  opts: {
    method?: string;
    body?: object;
    token?: string;
    concurrency: number;
    seconds: number;
    rate?: number;
  },
): Promise<LoadResult> {
  const args = [
    join(projectRoot, "bench/lib/load.ts"),
    "--urls",
    urls.join(","),
    "--path",
    path,
    "--method",
    opts.method ?? "GET",
    "--concurrency",
    String(opts.concurrency),
    "--seconds",
    String(opts.seconds),
    ...(opts.body ? ["--body", JSON.stringify(opts.body)] : []),
    ...(opts.token ? ["--header", `authorization: Bearer ${opts.token}`] : []),
    ...(opts.rate ? ["--rate", String(opts.rate)] : []),
  ];
  const { stdout: out } = await promisify(execFile)(process.execPath, args, {
    encoding: "utf8",
    maxBuffer: 1 << 20,
  });
  return JSON.parse(out.trim().split("\n").pop()!) as LoadResult;
}

async function statements(server: BenchPostgres, db: BenchDatabase) {
  return readCounters(server, db);
}

const server = await startBenchPostgres("private", undefined, false);
const database = await server.createDatabase("gateway");
const cp = await startControlPlane();
const target = await startHttpTarget();
const started: { stop(): Promise<unknown> }[] = [];
try {
  await applyCatalog(cp);
  await ensureNamespace(cp, NS);
  const c = httpConnector(NS, "web", target.url);
  c.spec.policy = {
    allowOperations: ["fetch", "deliverEvent"],
    actionScope: ["connector.operation.read", "connector.operation.invoke"],
  };
  delete c.spec.limits; // no rate limit, no parallelism cap: the gateway's own cost
  await apply(cp, [
    c,
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "caller", namespace: NS } },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "invoker", namespace: NS },
      rules: [{ apiGroups: ["cynodeai.io"], resources: ["connectors"], verbs: ["get", "invoke"] }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "caller-invokes", namespace: NS },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "invoker" },
      subjects: [{ kind: "ServiceAccount", name: "caller", namespace: NS }],
    },
  ]);
  const token = (await kubectlOk(cp, ["create", "token", "caller", "-n", NS, "--duration", "2h"])).trim();
  // The controller makes the Connector active, then goes: its statements are not the gateway's.
  const controller = new ControllerProcess({
    kubeconfig: cp.kubeconfigPath,
    databaseUrl: database.url,
    namespaces: [NS],
    logLevel: "info",
    keepLines: false,
  });
  await controller.started();
  await waitReady(cp, NS, "web", 120_000);
  await controller.stop();

  const invokePath = `/v1/namespaces/${NS}/connectors/web/operations/fetch`;
  const fetchBody = { input: { path: "/items/1" } };
  const profileDir = join(tmpdir(), "gateway-bench-profiles");
  if (values.profile) mkdirSync(profileDir, { recursive: true });
  if (values.profile)
    log(`CPU profiles of the replicas go to ${profileDir} (node bench/profile.ts to read them)`);
  const rows: string[][] = [];
  const rateRows: string[][] = [];
  const replayRows: string[][] = [];
  const jobRows: string[][] = [];
  const hot: string[] = [];
  let best1 = 0;
  let p99At500: number | undefined;
  let perInvocation1: number | undefined;
  log(`load average at start: ${load()}`);
  for (const n of REPLICAS) {
    const replicas = Array.from(
      { length: n },
      (_, i) =>
        new GatewayProcess({
          kubeconfig: cp.kubeconfigPath,
          databaseUrl: database.url,
          name: `bench-gw-${n}-${i}`,
          namespaces: [NS],
          logLevel: "info",
          keepLines: false,
          build: values.build as "ts" | "dist",
          ...(values.profile ? { nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] } : {}),
        }),
    );
    started.push(...replicas);
    await Promise.all(replicas.map((r) => r.ready()));
    const urls = replicas.map((r) => r.url);
    // The idle replicas' own statements (pg-boss polling and maintenance) per second.
    await sleep(2000);
    const idle0 = await statements(server, database);
    await sleep(5000);
    const idle = (pgDelta(idle0, await statements(server, database)).statements ?? 0) / 5;
    for (const callers of CALLERS) {
      const direct = await runLoad([target.url], "/items/1", {
        concurrency: callers,
        seconds: Math.min(SECONDS, 5),
      });
      const before = await statements(server, database);
      const r = await runLoad(urls, invokePath, {
        method: "POST",
        body: fetchBody,
        token,
        concurrency: callers,
        seconds: SECONDS,
      });
      const delta = pgDelta(before, await statements(server, database));
      const ok = r.statuses["200"] ?? 0;
      const perInvocation =
        delta.statements === undefined ? undefined : (delta.statements - idle * (SECONDS + 2)) / ok;
      const rss = replicas
        .map((g) => procMemory(g.child.pid!))
        .map((m) => `${fmtMB(m?.rss)} (peak ${fmtMB(m?.peakRss)})`);
      if (n === 1) {
        best1 = Math.max(best1, r.perSecond);
        perInvocation1 = perInvocation;
        hot.splice(
          0,
          hot.length,
          ...(delta.topStatements ?? []).slice(0, 6).map(([q, k]) => `${(k / ok).toFixed(2)} × ${q}`),
        );
      }
      rows.push([
        String(n),
        String(callers),
        fmtNum(r.perSecond),
        `${fmtNum(ok)}${r.requests - ok ? ` (+${r.requests - ok} not 200: ${JSON.stringify(r.statuses)})` : ""}`,
        fmtMs(r.p50),
        fmtMs(r.p99),
        fmtMs(r.p50 - direct.p50),
        fmtMs(r.p99 - direct.p99),
        perInvocation === undefined ? "n/a" : perInvocation.toFixed(2),
        rss.join(", "),
      ]);
      log(
        `${n} replica(s), ${callers} callers: ${fmtNum(r.perSecond)}/s, p99 ${fmtMs(r.p99)}; load ${load()}`,
      );
    }
    // Added latency at a fixed rate.
    const direct = await runLoad([target.url], "/items/1", { concurrency: 64, seconds: SECONDS, rate: RATE });
    const fixed = await runLoad(urls, invokePath, {
      method: "POST",
      body: fetchBody,
      token,
      concurrency: 64,
      seconds: SECONDS,
      rate: RATE,
    });
    if (n === 1) p99At500 = fixed.p99 - direct.p99;
    rateRows.push([
      String(n),
      String(RATE),
      fmtNum(fixed.perSecond),
      fmtMs(fixed.p50),
      fmtMs(fixed.p99),
      fmtMs(direct.p50),
      fmtMs(direct.p99),
      fmtMs(fixed.p50 - direct.p50),
      fmtMs(fixed.p99 - direct.p99),
    ]);
    // Idempotent replays: the same key and input again, one caller.
    const keyed = { ...fetchBody, idempotencyKey: `replay-${n}` };
    await runLoad(urls, invokePath, { method: "POST", body: keyed, token, concurrency: 1, seconds: 1 });
    const replays = await runLoad(urls, invokePath, {
      method: "POST",
      body: keyed,
      token,
      concurrency: 1,
      seconds: SECONDS,
    });
    const plain = await runLoad(urls, invokePath, {
      method: "POST",
      body: fetchBody,
      token,
      concurrency: 1,
      seconds: SECONDS,
    });
    replayRows.push([
      String(n),
      fmtNum(replays.requests),
      fmtMs(replays.p50),
      fmtMs(replays.p99),
      fmtMs(plain.p50),
      fmtMs(plain.p99),
    ]);
    // Async jobs: JOBS deliverEvent calls, then until every job reads back as succeeded.
    const done0 = await completedJobs(database);
    const t0 = performance.now();
    const enqueued = await enqueueJobs(urls, token, JOBS);
    const enqueueSeconds = (performance.now() - t0) / 1000;
    for (;;) {
      if ((await completedJobs(database)) - done0 >= enqueued) break;
      await sleep(50);
    }
    const seconds = (performance.now() - t0) / 1000;
    jobRows.push([
      String(n),
      fmtNum(enqueued),
      fmtNum(enqueued / enqueueSeconds),
      fmtNum(enqueued / seconds),
    ]);
    for (const r of replicas) await r.stop();
  }

  const table = (header: string[], body: string[][]) =>
    [
      `| ${header.join(" | ")} |`,
      `|${header.map(() => " --- ").join("|")}|`,
      ...body.map((r) => `| ${r.join(" | ")} |`),
    ].join("\n");
  const version = execFileSync("git", ["rev-parse", "--short", "HEAD"], {
    cwd: projectRoot,
    encoding: "utf8",
  }).trim();
  process.stdout.write(
    [
      `gateway bench at ${version} (${values.build}), ${SECONDS} s per row, load average now ${load()}; ${server.description}`,
      "",
      table(
        [
          "replicas",
          "callers",
          "invocations/s",
          "200s",
          "p50",
          "p99",
          "added p50",
          "added p99",
          "SQL statements/invocation",
          "RSS",
        ],
        rows,
      ),
      "",
      `At a fixed rate (open loop), latency added over calling the target directly:`,
      "",
      table(
        [
          "replicas",
          "rate/s",
          "achieved/s",
          "p50",
          "p99",
          "direct p50",
          "direct p99",
          "added p50",
          "added p99",
        ],
        rateRows,
      ),
      "",
      "Idempotent replays (the same key and input, one caller) against fresh calls:",
      "",
      table(
        ["replicas", "replays", "replay p50", "replay p99", "fresh call p50", "fresh call p99"],
        replayRows,
      ),
      "",
      "Async jobs (deliverEvent to the target), 16 callers enqueueing:",
      "",
      table(["replicas", "jobs", "accepted/s", "jobs/s to succeeded"], jobRows),
      "",
      "The hot path's statements, per invocation (1 replica, last row):",
      "",
      ...hot.map((h) => `- ${h}`),
      "",
      "Targets (on these 2 shared cores):",
      "",
      `- ≥ 2,000 invocations/s with one replica: ${mark(best1 >= 2000)} ${fmtNum(best1)}/s`,
      `- p99 added latency ≤ 10 ms at ${RATE}/s: ${mark(p99At500 === undefined ? undefined : p99At500 <= 10)} ${fmtMs(p99At500)}`,
      `- ≤ 3 statements per invocation: ${mark(perInvocation1 === undefined ? undefined : perInvocation1 <= 3)} ${perInvocation1?.toFixed(2) ?? "n/a"}`,
      "",
    ].join("\n"),
  );
} finally {
  for (const s of started.reverse()) await s.stop().catch(() => undefined);
  await target.stop();
  await cp.stop();
  await database.drop().catch(() => undefined);
  await server.stop();
}

async function completedJobs(db: BenchDatabase): Promise<number> {
  return withClient(db.url, async (c) => {
    const r = await c.query<{ n: number }>(
      "select count(*)::integer as n from pgboss.job where name = 'connector-gateway' and state = 'completed'",
    );
    return r.rows[0]!.n;
  });
}

/** `n` deliverEvent calls, 16 in flight, round-robin over the replicas; returns how many were accepted. */
async function enqueueJobs(urls: string[], token: string, n: number): Promise<number> {
  let next = 0;
  let accepted = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let i = next++; i < n; i = next++) {
        const res = await fetch(
          `${urls[i % urls.length]}/v1/namespaces/${NS}/connectors/web/operations/deliverEvent`,
          {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
            body: JSON.stringify({ input: { type: "com.example.bench", data: { i } } }),
          },
        );
        await res.arrayBuffer();
        if (res.status === 202) accepted++;
      }
    }),
  );
  return accepted;
}
