// The benchmarks (issue 8): `make bench` (ARGS="…" passes flags), or
//
//   node bench/run.ts [--n 1000,5000,10000] [--scenarios cold,floor,apply,quiet,drift,vault]
//                     [--concurrency 16] [--compare-concurrency 4] [--compare-max-n 1000]
//                     [--applies 1000] [--drift-tries 100] [--resync-period auto|20s]
//                     [--vault-n 1000,5000,10000] [--vault-secrets 5]
//                     [--postgres auto|private|url] [--pg-fast]
//                     [--controller-ref REV | --controller-root DIR] [--controller-build ts|dist]
//                     [--controller-node-options="--max-old-space-size=192"]
//                     [--profile] [--label TEXT] [--out bench/results] [--no-save]
//
// For each N: a fresh control plane (etcd + kube-apiserver) and database, N http Connectors
// created over 20 namespaces (concurrency 16; not measured), then the cold start and the
// floor at --concurrency, then apply → Ready and drift (one controller), then the quiet
// steady state (a controller with a short resync period). Where N ≤ --compare-max-n, the
// cold start and floor are also run at --compare-concurrency, on a control plane and
// database of their own. Prints the tables and writes them, with the raw numbers, to
// bench/results/ (latest.md, latest.json and a dated copy). Figures only: nothing here
// fails because the machine was slow. The Vault load (once the secrets integration is wired
// into main.ts) runs per N in --vault-n on a control plane, database and Vault of its own.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { projectRoot } from "../controller/src/api/paths.ts";
import { startControlPlane } from "../test/support/controlPlane.ts";
import { startHttpTarget } from "../test/support/httpTarget.ts";
import { prepareController } from "./lib/controllerProcess.ts";
import {
  benchConnector,
  createConnectors,
  kubeConfig,
  NAMESPACES,
  prepareCluster,
  ReadyTracker,
} from "./lib/kube.ts";
import { startBenchPostgres, type PgMode } from "./lib/postgres.ts";
import { markdown, TARGETS, type Results, type RunResult } from "./lib/report.ts";
import {
  applyLatency,
  coldStart,
  drift,
  floor,
  quiet,
  secretsWired,
  warmStart,
  type Env,
} from "./lib/scenarios.ts";
import { errorText, fmtMs, since } from "./lib/util.ts";
import { prepareVault, vaultConnector, vaultLoad } from "./lib/vault.ts";

const ALL = ["cold", "floor", "apply", "quiet", "drift", "vault"] as const;
type Scenario = (typeof ALL)[number];

const { values } = parseArgs({
  options: {
    n: { type: "string", default: "1000,5000,10000" },
    scenarios: { type: "string", default: ALL.join(",") },
    concurrency: { type: "string", default: "16" },
    "compare-concurrency": { type: "string", default: "4" },
    "compare-max-n": { type: "string", default: "1000" },
    applies: { type: "string", default: "1000" },
    "drift-tries": { type: "string", default: "100" },
    "vault-n": { type: "string" },
    "vault-secrets": { type: "string", default: "5" },
    "resync-period": { type: "string", default: "auto" },
    "quiet-passes": { type: "string", default: "3" },
    "floor-finalizers": { type: "boolean", default: true },
    "no-floor-finalizers": { type: "boolean", default: false },
    postgres: { type: "string", default: "auto" },
    "database-url": { type: "string" },
    "pg-fast": { type: "boolean", default: false },
    profile: { type: "boolean", default: false },
    "controller-ref": { type: "string" },
    "controller-root": { type: "string" },
    "controller-build": { type: "string", default: "ts" },
    "controller-node-options": { type: "string" },
    label: { type: "string" },
    out: { type: "string", default: join(projectRoot, "bench/results") },
    "no-save": { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
  strict: true,
});

if (values.help) {
  process.stdout.write(
    (await import("node:fs"))
      .readFileSync(new URL(import.meta.url), "utf8")
      .split("\nimport")[0]!
      .replace(/^\/\/ ?/gm, "") + "\n",
  );
  process.exit(0);
}

const ints = (s: string) =>
  s
    .split(",")
    .map((x) => Number(x.trim()))
    .filter((x) => Number.isInteger(x) && x > 0);
const ns = ints(values.n);
const concurrency = Number(values.concurrency);
if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error("--concurrency: one whole number");
const compareConcurrency = ints(values["compare-concurrency"]).filter((c) => c !== concurrency);
const compareMaxN = Number(values["compare-max-n"]);
const scenarios = new Set(values.scenarios.split(",").map((s) => s.trim()) as Scenario[]);
for (const s of scenarios)
  if (!ALL.includes(s)) throw new Error(`unknown scenario ${s} (known: ${ALL.join(", ")})`);
const applies = Number(values.applies);
const driftTries = Number(values["drift-tries"]);
const resyncPeriod = values["resync-period"];
if (resyncPeriod !== "auto" && !/^\d+s$/.test(resyncPeriod))
  throw new Error("--resync-period: auto, or whole seconds (e.g. 20s)");
/**
 * auto: 20 s, or twice the time a pass over every Connector took (rounded up to 5 s) when
 * that is longer, so that passes do not run into each other.
 */
function quietPeriod(passMs: number | undefined): string {
  if (resyncPeriod !== "auto") return resyncPeriod;
  const s = passMs === undefined ? 20 : Math.max(20, Math.ceil((2 * passMs) / 5000) * 5);
  return `${s}s`;
}
const quietPasses = Number(values["quiet-passes"]);
const vaultNs = values["vault-n"] === undefined ? ns : ints(values["vault-n"]);
const vaultSecrets = Number(values["vault-secrets"]);
const secrets = secretsWired();
const floorFinalizers = values["floor-finalizers"] && !values["no-floor-finalizers"];

const started = performance.now();
const startedAt = new Date().toISOString();
const log = (msg: string) =>
  process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(5)} s] ${msg}\n`);

function git(args: string[]): string {
  try {
    return execFileSync("git", args, { cwd: projectRoot, encoding: "utf8" }).trim();
  } catch {
    return "";
  }
}

const commit = git(["rev-parse", "--short", "HEAD"]);
const dirty = git(["status", "--porcelain", "--", "controller/"]) !== "";

// What this run started, stopped in reverse order: `perRun` after each N × concurrency,
// `global` at the end (and both on SIGINT/SIGTERM).
type Cleanup = () => Promise<void>;
const global: Cleanup[] = [];
const perRun: Cleanup[] = [];
let interrupted = false;
async function cleanup(list: Cleanup[]): Promise<void> {
  while (list.length) {
    const c = list.pop()!;
    await c().catch((err: unknown) => log(`cleanup failed: ${errorText(err)}`));
  }
}
// `on`, not `once`: the control plane harness re-raises a signal nobody else listens to,
// which would end the process before this cleanup ran.
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: cleaning up`);
    void cleanup(perRun)
      .then(() => cleanup(global))
      .finally(() => process.exit(130));
  });
}

// The controller under test: this checkout (default), a snapshot of a git revision, or
// another tree; as TypeScript (node main.ts, the default) or compiled (as the image runs it).
if (values["controller-build"] !== "ts" && values["controller-build"] !== "dist")
  throw new Error("--controller-build: ts or dist");
const tree = prepareController({
  ...(values["controller-ref"] ? { ref: values["controller-ref"] } : {}),
  ...(values["controller-root"] ? { root: values["controller-root"] } : {}),
  build: values["controller-build"],
});
global.push(async () => tree.remove());
let controllerUnderTest = tree.description;
if (!values["controller-ref"] && !values["controller-root"])
  controllerUnderTest = `working tree at ${commit}${dirty ? " (controller/ has uncommitted changes)" : ""}${values["controller-build"] === "dist" ? ", compiled to JavaScript" : ""}`;
const nodeOptions = values["controller-node-options"]?.split(/\s+/).filter(Boolean);
if (nodeOptions?.length) controllerUnderTest += `, node ${nodeOptions.join(" ")}`;
/** How every scenario starts the controller under test. */
const controllerLaunch = { controllerEntry: tree.entry, ...(nodeOptions?.length ? { nodeOptions } : {}) };
if (values.label) controllerUnderTest += ` — ${values.label}`;
log(`controller under test: ${controllerUnderTest} (${tree.entry})`);

const pgServer = await startBenchPostgres(
  values.postgres as PgMode,
  values["database-url"] ?? process.env.TEST_DATABASE_URL,
  values["pg-fast"],
);
global.push(() => pgServer.stop());
log(`PostgreSQL: ${pgServer.description}`);
const target = await startHttpTarget();
global.push(() => target.stop());

const runs: RunResult[] = [];
let kubernetesVersion = "";
let vaultServer = "";
const profileDir = values.profile ? join(values.out, "profiles") : undefined;

async function oneRun(n: number, c: number, primary: boolean): Promise<RunResult> {
  const run: RunResult = { n, concurrency: c, errors: [] };
  log(`N=${n}, concurrency ${c}: starting a control plane and a database`);
  try {
    const [cp, db] = await Promise.all([startControlPlane(), pgServer.createDatabase(`n${n}_c${c}`)]);
    perRun.push(
      () => db.drop(),
      () => cp.stop(),
    );
    if (!kubernetesVersion) {
      const v = await cp.kubectl(["version", "-o", "json"]);
      const parsed = JSON.parse(v.stdout || "{}") as { serverVersion?: { gitVersion?: string } };
      kubernetesVersion = `kube-apiserver ${parsed.serverVersion?.gitVersion ?? "?"}`;
    }
    await prepareCluster(cp);
    const kc = kubeConfig(cp);
    const t = performance.now();
    await createConnectors(
      kc,
      Array.from({ length: n }, (_, i) => benchConnector(i, target.url)),
      16,
    );
    log(`  created ${n} Connectors in ${fmtMs(since(t))} (not measured)`);
    const tracker = new ReadyTracker(kc);
    perRun.push(() => tracker.stop());
    await tracker.start();
    const env: Env = {
      n,
      cp,
      kc,
      pg: pgServer,
      db,
      target,
      tracker,
      log,
      ...(profileDir ? { profileDir } : {}),
      ...controllerLaunch,
    };

    log(`  cold start at concurrency ${c}`);
    run.coldStart = await coldStart(env, c, values.profile);
    log(
      `  cold start: all Ready in ${fmtMs(run.coldStart.allReadyMs)}, ${run.coldStart.statusWrites} status writes, ` +
        `${run.coldStart.sql.statements ?? "?"} statements, peak RSS ${(run.coldStart.peakRssBytes / 2 ** 20).toFixed(0)} MB, ` +
        `${run.coldStart.cpuSeconds.toFixed(1)} CPU s`,
    );
    const attempt = async (scenario: string, fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (err) {
        run.errors.push({ scenario, message: errorText(err) });
        log(`  ${scenario} failed: ${errorText(err)}`);
      }
    };
    if (scenarios.has("floor"))
      await attempt("floor", async () => {
        const f = await floor(env, c, { finalizers: floorFinalizers });
        run.floor = f;
        log(
          `  floor: status ${fmtMs(f.statusMs)} (stock client ${fmtMs(f.statusPatches.stock.ms)}), ` +
            `upserts ${fmtMs(f.upsertMs)}, finalizers ${fmtMs(f.finalizerMs)}, store inserts ${fmtMs(f.storeInsertMs)}`,
        );
      });
    if (!primary) return run;
    let passMs: number | undefined;
    if (scenarios.has("apply") || scenarios.has("drift")) {
      const { ctrl, warm } = await warmStart(env, c);
      passMs = warm.reconciledMs;
      try {
        if (scenarios.has("apply") && applies > 0)
          await attempt("apply", async () => {
            const a = await applyLatency(env, ctrl, applies);
            run.apply = a;
            log(
              `  apply → Ready: p50 ${fmtMs(a.latencyMs.p50)}, p99 ${fmtMs(a.latencyMs.p99)} ` +
                `(probe mean ${fmtMs(a.probeMs.mean)})`,
            );
          });
        if (scenarios.has("drift") && driftTries > 0)
          await attempt("drift", async () => {
            const d = await drift(env, driftTries);
            run.drift = d;
            log(`  drift: p50 ${fmtMs(d.latencyMs.p50)}, p99 ${fmtMs(d.latencyMs.p99)}`);
          });
      } finally {
        await ctrl.stop();
      }
    }
    if (scenarios.has("quiet"))
      await attempt("quiet", async () => {
        const q = await quiet(env, c, quietPeriod(passMs), quietPasses);
        run.quiet = q;
        log(
          `  quiet: ${q.passes} passes of ${q.resyncPeriod}, ${q.statusWrites} status writes, ` +
            `${q.instanceRowsWritten} rows written, ${q.healthChecked} health checks`,
        );
      });
  } catch (err) {
    run.errors.push({ scenario: "setup/cold", message: errorText(err) });
    log(`N=${n}, c=${c} failed: ${(err as Error)?.stack ?? String(err)}`);
  } finally {
    // This run's watch, control plane and database go now: the next run starts clean.
    await cleanup(perRun);
  }
  return run;
}

/** 6. Vault load: its own control plane, database and Vault-API server. */
async function vaultRun(n: number, c: number): Promise<RunResult> {
  const run: RunResult = { n, concurrency: c, errors: [] };
  log(`N=${n}, Vault load at concurrency ${c}: control plane, database, Vault-API server`);
  try {
    const [cp, db] = await Promise.all([startControlPlane(), pgServer.createDatabase(`vault_n${n}`)]);
    perRun.push(
      () => db.drop(),
      () => cp.stop(),
    );
    await prepareCluster(cp);
    const vault = await prepareVault(cp, vaultSecrets);
    perRun.push(() => vault.stop());
    const kc = kubeConfig(cp);
    const t = performance.now();
    await createConnectors(
      kc,
      Array.from({ length: n }, (_, i) => vaultConnector(i, vault.target, vaultSecrets)),
      16,
    );
    log(`  created ${n} Connectors (secrets in Vault) in ${fmtMs(since(t))} (not measured)`);
    const tracker = new ReadyTracker(kc);
    perRun.push(() => tracker.stop());
    await tracker.start();
    const env: Env = { n, cp, kc, pg: pgServer, db, target, tracker, log, ...controllerLaunch };
    const v = await vaultLoad(env, vault, c, vaultSecrets);
    run.vault = v;
    vaultServer = v.vaultServer;
    log(
      `  Vault load: all Ready in ${fmtMs(v.coldStart.allReadyMs)}, ${v.logins} logins, ${v.reads} reads, ` +
        `${v.tokenRequests} TokenRequests, ${v.vaultErrors} Vault errors`,
    );
  } catch (err) {
    run.errors.push({ scenario: "vault", message: errorText(err) });
    log(`N=${n} Vault load failed: ${(err as Error)?.stack ?? String(err)}`);
  } finally {
    await cleanup(perRun);
  }
  return run;
}

try {
  for (const n of ns) {
    for (const c of compareConcurrency) {
      if (interrupted || n > compareMaxN || !(scenarios.has("cold") || scenarios.has("floor"))) continue;
      runs.push(await oneRun(n, c, false));
    }
    if (interrupted) break;
    const main = [...scenarios].some((x) => x !== "vault");
    if (main) runs.push(await oneRun(n, concurrency, true));
    if (interrupted) break;
    if (scenarios.has("vault") && secrets && vaultNs.includes(n)) runs.push(await vaultRun(n, concurrency));
  }
  for (const n of vaultNs) {
    if (interrupted || ns.includes(n) || !scenarios.has("vault") || !secrets) continue;
    runs.push(await vaultRun(n, concurrency));
  }
} finally {
  await cleanup(perRun);
  await cleanup(global);
}

const results: Results = {
  startedAt,
  durationMs: since(started),
  command: `node bench/run.ts ${process.argv.slice(2).join(" ")}`.trim(),
  environment: {
    commit,
    controller: controllerUnderTest,
    cpus: cpus().length,
    memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
    loadAverage: loadavg()
      .map((x) => x.toFixed(1))
      .join(" "),
    node: process.version,
    kubernetes: kubernetesVersion,
    postgres: pgServer.description,
    postgresSettings: pgServer.settings,
    namespaces: NAMESPACES,
    scenarios: [...scenarios],
    applies,
    driftTries,
    resyncPeriod,
    concurrency,
    compareConcurrency: compareConcurrency.length
      ? `${compareConcurrency.join(",")} up to N=${compareMaxN}`
      : "none",
  },
  targets: TARGETS,
  runs,
  vault: secrets
    ? {
        status: "run",
        reason: scenarios.has("vault")
          ? "no Vault run finished (see the errors)"
          : "not selected (--scenarios)",
        ...(vaultServer ? { server: vaultServer } : {}),
      }
    : {
        status: "skipped",
        reason:
          "the secrets integration has not landed (controller/src/main.ts passes no secrets resolver to the reconciler).",
      },
};
const md = markdown(results);
process.stdout.write(`\n${md}\n`);
if (!values["no-save"]) {
  mkdirSync(values.out, { recursive: true });
  const stamp = startedAt.replace(/[:]/g, "-").replace(/\.\d+Z$/, "Z");
  const json = `${JSON.stringify(results, null, 2)}\n`;
  writeFileSync(join(values.out, "latest.md"), `${md}\n`);
  writeFileSync(join(values.out, "latest.json"), json);
  writeFileSync(join(values.out, `${stamp}-${commit}.md`), `${md}\n`);
  writeFileSync(join(values.out, `${stamp}-${commit}.json`), json);
  log(`written to ${values.out}/latest.md and latest.json (and ${stamp}-${commit}.*)`);
}
log(`done in ${fmtMs(since(started))}`);
process.exit(0);
