// Before/after: the key figures of two result files side by side (markdown).
//
//   node bench/compare.ts bench/results/A.json bench/results/B.json [--labels before,after]
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { floorMs, type Results, type RunResult } from "./lib/report.ts";
import { fmtMB, fmtMs, fmtNum, fmtRatio } from "./lib/util.ts";

interface Row {
  label: string;
  get(r: RunResult): number | undefined;
  fmt(v: number): string;
}

const ROWS: Row[] = [
  { label: "cold start: all Ready", get: (r) => r.coldStart?.allReadyMs, fmt: fmtMs },
  {
    label: "cold start / floor",
    get: (r) => (r.coldStart && r.floor ? r.coldStart.allReadyMs / floorMs(r.floor) : undefined),
    fmt: fmtRatio,
  },
  { label: "cold start: controller CPU s", get: (r) => r.coldStart?.cpuSeconds, fmt: (v) => v.toFixed(1) },
  { label: "cold start: peak RSS", get: (r) => r.coldStart?.peakRssBytes, fmt: fmtMB },
  { label: "cold start: status writes", get: (r) => r.coldStart?.statusWrites, fmt: (v) => fmtNum(v) },
  {
    label: "cold start: all API writes",
    get: (r) =>
      r.coldStart
        ? Object.entries(r.coldStart.apiRequests)
            .filter(([k]) => /(PATCH|POST|PUT|DELETE)$/.test(k))
            .reduce((s, [, v]) => s + v, 0)
        : undefined,
    fmt: (v) => fmtNum(v),
  },
  { label: "cold start: SQL statements", get: (r) => r.coldStart?.sql.statements, fmt: (v) => fmtNum(v) },
  { label: "cold start: reconciles", get: (r) => r.coldStart?.reconciles, fmt: (v) => fmtNum(v) },
  {
    label: "cold start: apiserver CPU s",
    get: (r) => r.coldStart?.serverCpuSeconds.apiserver,
    fmt: (v) => v.toFixed(0),
  },
  {
    label: "cold start: others' CPU s (noise)",
    get: (r) => r.coldStart?.serverCpuSeconds.others,
    fmt: (v) => v.toFixed(0),
  },
  { label: "floor (status + upserts)", get: (r) => (r.floor ? floorMs(r.floor) : undefined), fmt: fmtMs },
  { label: "apply → Ready p50", get: (r) => r.apply?.latencyMs.p50, fmt: fmtMs },
  { label: "apply → Ready p99", get: (r) => r.apply?.latencyMs.p99, fmt: fmtMs },
  { label: "drift p50", get: (r) => r.drift?.latencyMs.p50, fmt: fmtMs },
  { label: "drift p99", get: (r) => r.drift?.latencyMs.p99, fmt: fmtMs },
  { label: "quiet: status writes", get: (r) => r.quiet?.statusWrites, fmt: (v) => fmtNum(v) },
  { label: "quiet: rows written", get: (r) => r.quiet?.instanceRowsWritten, fmt: (v) => fmtNum(v) },
  {
    label: "quiet: SQL statements per Connector per pass",
    get: (r) =>
      r.quiet?.sql.statements === undefined
        ? undefined
        : r.quiet.sql.statements / (r.quiet.n * Math.max(r.quiet.passes, 1)),
    fmt: (v) => v.toFixed(2),
  },
  { label: "quiet: warm restart pass", get: (r) => r.quiet?.warmStart.reconciledMs, fmt: fmtMs },
];

const { values, positionals } = parseArgs({
  options: { labels: { type: "string", default: "before,after" } },
  allowPositionals: true,
});
if (positionals.length !== 2) {
  process.stderr.write("usage: node bench/compare.ts BEFORE.json AFTER.json [--labels before,after]\n");
  process.exit(2);
}
const [a, b] = positionals.map((p) => JSON.parse(readFileSync(p, "utf8")) as Results) as [Results, Results];
const [la, lb] = values.labels.split(",");
const key = (r: RunResult) => `${r.n}/${r.concurrency}/${r.vault ? "vault" : "main"}`;
const out: string[] = [];
out.push(
  `Controller ${la}: ${String(a.environment.controller)}; ${lb}: ${String(b.environment.controller)}.`,
);
out.push("");
for (const rb of b.runs) {
  const ra = a.runs.find((r) => key(r) === key(rb));
  if (!ra || rb.vault) continue;
  out.push(`N=${fmtNum(rb.n)}, concurrency ${rb.concurrency}:`);
  out.push("");
  out.push(`| figure | ${la} | ${lb} | change |`);
  out.push("| --- | ---: | ---: | ---: |");
  for (const row of ROWS) {
    const va = row.get(ra);
    const vb = row.get(rb);
    if (va === undefined && vb === undefined) continue;
    const change =
      va !== undefined && vb !== undefined && va !== 0 ? `${(((vb - va) / va) * 100).toFixed(0)}%` : "";
    out.push(
      `| ${row.label} | ${va === undefined ? "n/a" : row.fmt(va)} | ${vb === undefined ? "n/a" : row.fmt(vb)} | ${change} |`,
    );
  }
  out.push("");
}
process.stdout.write(`${out.join("\n")}\n`);
