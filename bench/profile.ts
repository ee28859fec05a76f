// Summarises V8 CPU profiles (.cpuprofile, from node --cpu-prof): the functions with the
// most self time, self time by package/file, and the inclusive time of the project's own
// functions (a function counted once per sample however deep it recurses).
//
//   node bench/profile.ts bench/results/profiles/CPU.*.cpuprofile [--top 30]
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { parseArgs } from "node:util";
import { projectRoot } from "../controller/src/api/paths.ts";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  selfByFunction: { fn: string; where: string; ms: number; pct: number }[];
  selfByPackage: { pkg: string; ms: number; pct: number }[];
  inclusiveOwn: { fn: string; where: string; ms: number; pct: number }[];
}

function where(cf: CallFrame): string {
  if (!cf.url) return "";
  let u = cf.url.replace(/^file:\/\//, "");
  if (u.startsWith("/")) u = relative(projectRoot, u);
  return `${u}:${cf.lineNumber + 1}`;
}

function pkgOf(cf: CallFrame): string {
  const u = cf.url;
  if (!u) return cf.functionName.startsWith("(") ? cf.functionName : "(native)";
  if (u.startsWith("node:")) return `node:${u.slice(5).split("/")[0]}`;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
  if (nm) return nm[1]!;
  const own = /(controller\/src\/[^/]+|bench|test\/support)\//.exec(u);
  return own ? own[1]! : u;
}

export function summarise(file: string, top = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  const inclusive = new Map<string, { fn: string; where: string; us: number }>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    const dt = p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0; // a sample lasts until the next one
    total += dt;
    self.set(id, (self.get(id) ?? 0) + dt);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const cf = byId.get(cur)!.callFrame;
      if (!/controller\/src\//.test(cf.url)) continue;
      const key = `${cf.functionName}@${cf.url}:${cf.lineNumber}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const e = inclusive.get(key) ?? { fn: cf.functionName || "(anonymous)", where: where(cf), us: 0 };
      e.us += dt;
      inclusive.set(key, e);
    }
  }
  const byFn = new Map<string, { fn: string; where: string; us: number }>();
  const byPkg = new Map<string, number>();
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    const key = `${cf.functionName}@${cf.url}:${cf.lineNumber}`;
    const e = byFn.get(key) ?? { fn: cf.functionName || "(anonymous)", where: where(cf), us: 0 };
    e.us += us;
    byFn.set(key, e);
    const pkg = pkgOf(cf);
    byPkg.set(pkg, (byPkg.get(pkg) ?? 0) + us);
  }
  const pct = (us: number) => Math.round((us / total) * 1000) / 10;
  const ms = (us: number) => Math.round(us / 100) / 10;
  return {
    file,
    totalMs: ms(total),
    selfByFunction: [...byFn.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((e) => ({ fn: e.fn, where: e.where, ms: ms(e.us), pct: pct(e.us) })),
    selfByPackage: [...byPkg]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([pkg, us]) => ({ pkg, ms: ms(us), pct: pct(us) })),
    inclusiveOwn: [...inclusive.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((e) => ({ fn: e.fn, where: e.where, ms: ms(e.us), pct: pct(e.us) })),
  };
}

export function summaryMarkdown(s: ProfileSummary): string {
  const rows = (xs: string[][]) => xs.map((r) => `| ${r.join(" | ")} |`).join("\n");
  return [
    `### ${relative(projectRoot, s.file)} (${(s.totalMs / 1000).toFixed(1)} s sampled)`,
    "",
    "Self time by function:",
    "",
    "| self ms | % | function | where |",
    "| ---: | ---: | --- | --- |",
    rows(s.selfByFunction.map((e) => [e.ms.toFixed(0), e.pct.toFixed(1), `\`${e.fn}\``, e.where])),
    "",
    "Self time by package:",
    "",
    "| self ms | % | package |",
    "| ---: | ---: | --- |",
    rows(s.selfByPackage.map((e) => [e.ms.toFixed(0), e.pct.toFixed(1), e.pkg])),
    "",
    "Inclusive time of controller/src functions:",
    "",
    "| incl. ms | % | function | where |",
    "| ---: | ---: | --- | --- |",
    rows(s.inclusiveOwn.map((e) => [e.ms.toFixed(0), e.pct.toFixed(1), `\`${e.fn}\``, e.where])),
    "",
  ].join("\n");
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    options: { top: { type: "string", default: "25" } },
    allowPositionals: true,
  });
  if (!positionals.length) {
    process.stderr.write("usage: node bench/profile.ts FILE.cpuprofile… [--top 25]\n");
    process.exit(2);
  }
  for (const f of positionals) process.stdout.write(`${summaryMarkdown(summarise(f, Number(values.top)))}\n`);
}
