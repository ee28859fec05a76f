// The results as markdown tables, with the targets next to the figures (✓/✗; never an assertion).
import { summarise, summaryMarkdown } from "../profile.ts";
import type { ApplyLatency, ColdStart, Drift, Floor, Quiet } from "./scenarios.ts";
import type { VaultLoad } from "./vault.ts";
import { fmtMB, fmtMs, fmtNum, fmtRatio, mark } from "./util.ts";

export interface RunResult {
  n: number;
  concurrency: number;
  coldStart?: ColdStart;
  floor?: Floor;
  quiet?: Quiet;
  apply?: ApplyLatency;
  drift?: Drift;
  vault?: VaultLoad;
  errors: { scenario: string; message: string }[];
}

export interface Results {
  startedAt: string;
  durationMs: number;
  command: string;
  environment: Record<string, unknown>;
  targets: typeof TARGETS;
  runs: RunResult[];
  vault: { status: "skipped" | "run"; reason: string; server?: string };
}

export const TARGETS = {
  coldStartMsAt10k: 30_000,
  coldStartFloorRatio: 1.3,
  applyReadyP99Ms: 250,
  quietWrites: 0,
  peakRssBytesAt10k: 250 * 1024 * 1024,
};

/** The official floor: N status patches, then N upserts, each at the cold start's concurrency. */
export function floorMs(f: Floor): number {
  return f.statusMs + f.upsertMs;
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

const perConnector = (total: number | undefined, n: number) =>
  total === undefined ? "n/a" : `${fmtNum(total)} (${(total / n).toFixed(1)}/Connector)`;

function coldRows(runs: RunResult[]): string[][] {
  return runs
    .filter((r) => r.coldStart)
    .map((r) => {
      const c = r.coldStart!;
      const other = Object.entries(c.apiRequests)
        // leases: the API server's own heartbeats, not the controller's.
        .filter(
          ([k]) =>
            k !== "all" &&
            k !== "connectors/status PATCH" &&
            !k.startsWith("leases") &&
            !/ (LIST|WATCH|GET)$/.test(k),
        )
        .map(([k, v]) => `${k} ${fmtNum(v)}`)
        .join(", ");
      const s = c.serverCpuSeconds;
      return [
        fmtNum(c.n),
        String(c.concurrency),
        fmtMs(c.allReadyMs),
        fmtMs(c.cachesSyncedMs),
        `${fmtNum(c.statusWrites)}`,
        other || "–",
        c.sql.statements !== undefined
          ? perConnector(c.sql.statements, c.n)
          : `n/a (${fmtNum(c.sql.transactions)} xacts)`,
        perConnector(c.sql.transactions, c.n),
        fmtMB(c.peakRssBytes),
        c.heapUsedBytes === undefined
          ? "n/a"
          : `${fmtMB(c.heapUsedBytes)} / ${fmtMB(c.heapTotalBytes)} / ${fmtMB(c.externalBytes)}`,
        c.cpuSeconds.toFixed(1),
        [s.apiserver, s.etcd, s.postgres].map((x) => (x === undefined ? "n/a" : x.toFixed(0))).join(" / "),
        s.others === undefined ? "n/a" : s.others.toFixed(0),
      ];
    });
}

function floorRows(runs: RunResult[]): string[][] {
  return runs
    .filter((r) => r.floor)
    .map((r) => {
      const f = r.floor!;
      const cold = r.coldStart?.allReadyMs;
      const fl = floorMs(f);
      const withFin = f.finalizerMs === undefined ? undefined : fl + f.finalizerMs;
      return [
        fmtNum(f.n),
        String(f.concurrency),
        fmtMs(cold),
        fmtMs(f.statusMs),
        fmtMs(f.statusPatches.stock.ms),
        fmtMs(f.upsertMs),
        fmtMs(fl),
        cold === undefined ? "n/a" : fmtRatio(cold / fl),
        fmtMs(f.finalizerMs),
        withFin === undefined || cold === undefined ? "n/a" : fmtRatio(cold / withFin),
        fmtMs(f.storeInsertMs),
      ];
    });
}

function applyRows(runs: RunResult[]): string[][] {
  return runs
    .filter((r) => r.apply)
    .map((r) => {
      const a = r.apply!;
      return [
        fmtNum(a.existing),
        String(r.concurrency),
        fmtNum(a.latencyMs.n),
        fmtMs(a.latencyMs.p50),
        fmtMs(a.latencyMs.p95),
        fmtMs(a.latencyMs.p99),
        fmtMs(a.latencyMs.max),
        fmtMs(a.createMs.p50),
        `${fmtMs(a.probeMs.mean)} / ${fmtMs(a.probeMs.p50)} / ${fmtMs(a.probeMs.p99)}`,
        `${fmtMs(a.reconcileMs.p50)} / ${fmtMs(a.reconcileMs.p99)}`,
      ];
    });
}

function quietRows(runs: RunResult[]): string[][] {
  return runs
    .filter((r) => r.quiet)
    .map((r) => {
      const q = r.quiet!;
      return [
        fmtNum(q.n),
        q.resyncPeriod,
        q.passes.toFixed(2),
        fmtNum(q.statusWrites),
        fmtNum(q.instanceRowsWritten),
        fmtNum(q.instanceTupleWrites),
        fmtNum(q.healthChecked),
        fmtNum(q.auditRows),
        q.sql.statements === undefined
          ? "n/a"
          : `${(q.sql.statements / (q.n * Math.max(q.passes, 1))).toFixed(2)} per Connector per pass (${fmtNum(q.sql.statements)} in all)`,
        `${fmtMs(q.warmStart.reconciledMs)}, ${fmtNum(q.warmStart.statusWrites)} status, ${fmtNum(q.warmStart.rowsWritten)} rows`,
      ];
    });
}

function driftRows(runs: RunResult[]): string[][] {
  return runs
    .filter((r) => r.drift)
    .map((r) => {
      const d = r.drift!;
      return [
        fmtNum(r.n),
        `${d.corrected}/${d.tries}`,
        fmtMs(d.latencyMs.p50),
        fmtMs(d.latencyMs.p95),
        fmtMs(d.latencyMs.p99),
        fmtMs(d.latencyMs.max),
      ];
    });
}

function vaultRows(runs: RunResult[]): string[][] {
  return runs
    .filter((r) => r.vault)
    .map((r) => {
      const v = r.vault!;
      const c = v.coldStart;
      return [
        fmtNum(v.n),
        String(v.concurrency),
        String(v.tenants),
        String(v.distinctSecrets),
        fmtMs(c.allReadyMs),
        `${fmtNum(v.logins)} (ideal ${v.tenants})`,
        `${fmtNum(v.reads)} (ideal ${v.distinctSecrets})`,
        fmtNum(v.tokenRequests),
        fmtNum(v.vaultErrors),
        fmtNum(c.statusWrites),
        fmtMB(c.peakRssBytes),
        c.cpuSeconds.toFixed(1),
      ];
    });
}

function targetRows(results: Results): string[][] {
  const rows: string[][] = [];
  const t = results.targets;
  for (const r of results.runs) {
    const label = `N=${fmtNum(r.n)}, c=${r.concurrency}`;
    if (r.coldStart && r.n >= 10_000) {
      const c = r.coldStart;
      rows.push([
        `cold start ≤ 30 s (${label})`,
        fmtMs(c.allReadyMs),
        mark(c.allReadyMs <= t.coldStartMsAt10k),
      ]);
      rows.push([
        `peak RSS ≤ 250 MB (${label})`,
        fmtMB(c.peakRssBytes),
        mark(c.peakRssBytes <= t.peakRssBytesAt10k),
      ]);
    }
    if (r.coldStart && r.floor && r.n >= 10_000) {
      const ratio = r.coldStart.allReadyMs / floorMs(r.floor);
      rows.push([
        `cold start ≤ 1.3× floor (${label})`,
        fmtRatio(ratio),
        mark(ratio <= t.coldStartFloorRatio),
      ]);
    }
    if (r.apply) {
      const p99 = r.apply.latencyMs.p99;
      rows.push([
        `apply → Ready p99 ≤ 250 ms (${fmtNum(r.apply.existing)} exist)`,
        fmtMs(p99),
        mark(p99 <= t.applyReadyP99Ms),
      ]);
    }
    if (r.quiet) {
      const q = r.quiet;
      const writes = q.statusWrites + q.instanceRowsWritten;
      rows.push([
        `0 quiet writes (${label})`,
        `${q.statusWrites} status + ${q.instanceRowsWritten} rows`,
        mark(writes <= t.quietWrites),
      ]);
    }
  }
  return rows;
}

export function markdown(results: Results): string {
  const e = results.environment;
  const out: string[] = [];
  out.push(`# connector-controller benchmarks`);
  out.push("");
  out.push(
    `${results.startedAt} · checkout ${String(e.commit)} · ${fmtMs(results.durationMs)} · \`${results.command}\``,
  );
  out.push("");
  out.push(`Controller under test: ${String(e.controller)}.`);
  out.push("");
  out.push(
    `Machine: ${String(e.cpus)} CPUs, ${String(e.memory)}, load average at start ${String(e.loadAverage)} (shared, noisy). ` +
      `Node ${String(e.node)}, ${String(e.kubernetes)}, PostgreSQL: ${String(e.postgres)}. ` +
      `Connectors of type \`http\` over ${String(e.namespaces)} namespaces, probing a loopback HTTP server.`,
  );
  out.push("");
  out.push("## Targets");
  out.push("");
  out.push(table(["target", "figure", ""], targetRows(results)));
  out.push("");
  const cold = coldRows(results.runs);
  if (cold.length) {
    out.push("## 1. Cold start");
    out.push("");
    out.push(
      "All N Connectors exist before the controller (a child process) starts; time from spawn to every Connector " +
        "Ready for its generation, as seen by a watch. API writes from the API server's `apiserver_request_total`; " +
        "statements from pg_stat_statements (transactions from pg_stat_database); RSS is VmHWM, the heap figures the " +
        "controller's own nodejs_* gauges once all are Ready; CPU is utime+stime. " +
        "Others' CPU: what processes outside this benchmark used on the machine meanwhile (the noise).",
    );
    out.push("");
    out.push(
      table(
        [
          "N",
          "c",
          "all Ready",
          "caches synced",
          "status writes",
          "other API writes",
          "SQL statements",
          "transactions",
          "peak RSS",
          "heap used / heap / external at end",
          "CPU s",
          "apiserver / etcd / pg CPU s",
          "others' CPU s",
        ],
        cold,
      ),
    );
    out.push("");
  }
  const fl = floorRows(results.runs);
  if (fl.length) {
    out.push("## 2. The floor");
    out.push("");
    out.push(
      "A bare loop at the same concurrency on the same servers: N status merge patches (the controller's writer, " +
        "connections reused; and once with stock client-node 2.0.1, which opens a TLS connection per request), " +
        "N single-statement upserts (plain `pg`), and, for comparison, " +
        "N finalizer patches (a cold start also adds its finalizer to each Connector) and N inserts through the " +
        "project's store (a transaction each). The floor is status patches + upserts.",
    );
    out.push("");
    out.push(
      table(
        [
          "N",
          "c",
          "cold start",
          "status patches",
          "status patches, stock client",
          "upserts",
          "floor",
          "cold / floor",
          "finalizer patches",
          "cold / (floor + finalizers)",
          "store inserts",
        ],
        fl,
      ),
    );
    out.push("");
  }
  const ap = applyRows(results.runs);
  if (ap.length) {
    out.push("## 3. Apply → Ready");
    out.push("");
    out.push(
      "New Connectors created one after another while the others exist; from sending the create to the watch " +
        "seeing Ready for that generation. The probe's own time and the reconcile time come from the controller's histograms.",
    );
    out.push("");
    out.push(
      table(
        [
          "existing",
          "c",
          "applies",
          "p50",
          "p95",
          "p99",
          "max",
          "create p50",
          "probe mean / p50 / p99",
          "reconcile p50 / p99",
        ],
        ap,
      ),
    );
    out.push("");
  }
  const q = quietRows(results.runs);
  if (q.length) {
    out.push("## 4. Quiet steady state");
    out.push("");
    out.push(
      "A controller restarted with a short resync period, nothing changed, counted over three resync passes. " +
        "Rows written: instance rows whose updated_at/created_at moved; tuple writes: pg_stat_user_tables; " +
        "health-check bookkeeping (health_checked_at moved) apart.",
    );
    out.push("");
    out.push(
      table(
        [
          "N",
          "resync",
          "passes",
          "status writes",
          "rows written",
          "tuple writes",
          "health checks",
          "audit rows",
          "SQL statements",
          "warm restart",
        ],
        q,
      ),
    );
    out.push("");
  }
  const d = driftRows(results.runs);
  if (d.length) {
    out.push("## 5. Drift correction");
    out.push("");
    out.push(
      "A manual UPDATE of a row's config from the bench's own connection; time until a poll (every 2 ms) reads the corrected value.",
    );
    out.push("");
    out.push(table(["N", "corrected", "p50", "p95", "p99", "max"], d));
    out.push("");
  }
  out.push("## 6. Vault load");
  out.push("");
  const v = vaultRows(results.runs);
  if (results.vault.status === "skipped" || !v.length) out.push(results.vault.reason);
  else {
    out.push(
      "A cold start of N bearer-auth http Connectors whose tokens live in a Vault-API server (Kubernetes auth " +
        "against the test API server): 20 tenants, each logging in as its own service account, a few secrets per " +
        "tenant shared by its Connectors. Logins and KV reads from the server's audit log, TokenRequests from the " +
        "API server. Ideal: one login per tenant, one read per distinct secret.",
    );
    out.push("");
    out.push(
      table(
        [
          "N",
          "c",
          "tenants",
          "secrets",
          "all Ready",
          "logins",
          "KV reads",
          "TokenRequests",
          "Vault errors",
          "status writes",
          "peak RSS",
          "CPU s",
        ],
        v,
      ),
    );
  }
  out.push("");
  const profiled = results.runs.filter((r) => r.coldStart?.profile);
  if (profiled.length) {
    out.push("## CPU profiles of the cold starts");
    out.push("");
    out.push(
      "`node --cpu-prof` on the controller (profiling slows it: the figures above are from a profiled run).",
    );
    out.push("");
    for (const r of profiled) {
      out.push(`N=${fmtNum(r.n)}, c=${r.concurrency}:`);
      out.push("");
      out.push(summaryMarkdown(summarise(r.coldStart!.profile!, 20)));
    }
  }
  const errors = results.runs.flatMap((r) =>
    r.errors.map((x) => `- N=${r.n}, c=${r.concurrency}, ${x.scenario}: ${x.message}`),
  );
  if (errors.length) {
    out.push("## Errors");
    out.push("");
    out.push(...errors);
    out.push("");
  }
  return out.join("\n");
}
