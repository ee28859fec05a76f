// globalSetup of the `reliability` vitest project: gives the test files a directory for
// their records (tally.ts) and, once every file has run, prints the summary table.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import type { ScenarioRecord } from "./tally.ts";

export function summaryTable(records: ScenarioRecord[], full: boolean): string {
  const header = ["area", "scenario", "status", "faults", "bad inputs", "violations", "secret bytes", "s"];
  const rows = records.map((r) => [
    r.area,
    r.scenario + (r.note ? ` (${r.note})` : ""),
    r.status === "ran" ? "ran" : "NOT YET WIRED",
    String(r.faults),
    String(r.badInputs),
    String(r.violations),
    String(r.secretBytes),
    String(r.seconds),
  ]);
  const ran = records.filter((r) => r.status === "ran");
  const sum = (k: "faults" | "badInputs" | "violations" | "secretBytes") =>
    records.reduce((n, r) => n + r[k], 0);
  const totals = [
    "TOTAL",
    `${ran.length} scenarios run, ${records.length - ran.length} not yet wired`,
    "",
    String(sum("faults")),
    String(sum("badInputs")),
    String(sum("violations")),
    String(sum("secretBytes")),
    String(Math.round(records.reduce((n, r) => n + r.seconds, 0))),
  ];
  const all = [header, ...rows, totals];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => "| " + r.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |";
  const rule = "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|";
  return [
    `reliability suite (${full ? "full: RELIABILITY_FULL=1" : "reduced: set RELIABILITY_FULL=1 for the full one"})`,
    fmt(header),
    rule,
    ...rows.map(fmt),
    rule,
    fmt(totals),
  ].join("\n");
}

export default function setup(project: TestProject): () => void {
  const dir = mkdtempSync(join(tmpdir(), "connector-reliability-"));
  project.provide("reliabilityTallyDir", dir);
  return () => {
    const records: ScenarioRecord[] = [];
    for (const f of readdirSync(dir).sort())
      records.push(...(JSON.parse(readFileSync(join(dir, f), "utf8")) as ScenarioRecord[]));
    rmSync(dir, { recursive: true, force: true });
    if (records.length === 0) return;
    console.log(`\n${summaryTable(records, process.env.RELIABILITY_FULL === "1")}\n`);
  };
}
