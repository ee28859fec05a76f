// The controller under test, in a child process started the way an operator starts it
// (test/support/controllerProcess.ts), so that its memory and CPU are its own; what the
// benchmark reads from it (CPU and memory from /proc, a settled queue from /metrics); and
// the tree it runs from (this checkout, a git revision, or compiled JavaScript).
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { projectRoot } from "../../controller/src/api/paths.ts";
import { ControllerProcess } from "../../test/support/controllerProcess.ts";
import { sleep } from "../../test/support/wait.ts";
import { parseLabels } from "./kube.ts";
import { procMemory, procStat } from "./proc.ts";

export interface BenchControllerOptions {
  /** The file to run (default: this checkout's controller/src/main.ts). */
  entry?: string;
  kubeconfig: string;
  databaseUrl: string;
  concurrency: number;
  resyncPeriod?: string;
  /** Write a V8 CPU profile into this directory when the process exits. */
  cpuProfileDir?: string;
  /** Flags for node itself, e.g. --max-old-space-size=192. */
  nodeOptions?: string[];
}

export interface ProcessFigures {
  cpuSeconds: number;
  rss: number;
  peakRss: number;
}

/** A controller at info level that keeps no log lines (only counts, first times and warnings). */
export function startBenchController(opts: BenchControllerOptions): ControllerProcess {
  const nodeArgs = [...(opts.nodeOptions ?? [])];
  if (opts.cpuProfileDir) {
    mkdirSync(opts.cpuProfileDir, { recursive: true });
    nodeArgs.push("--cpu-prof", "--cpu-prof-dir", opts.cpuProfileDir);
  }
  return new ControllerProcess({
    ...(opts.entry ? { entry: opts.entry } : {}),
    nodeArgs,
    kubeconfig: opts.kubeconfig,
    databaseUrl: opts.databaseUrl,
    logLevel: "info",
    keepLines: false,
    args: [
      "--concurrency",
      String(opts.concurrency),
      ...(opts.resyncPeriod ? ["--resync-period", opts.resyncPeriod] : []),
    ],
  });
}

/** CPU seconds and memory of the process so far (read before it exits). */
export function figures(ctrl: ControllerProcess): ProcessFigures {
  const pid = ctrl.child.pid!;
  const stat = procStat(pid);
  const mem = procMemory(pid);
  return { cpuSeconds: stat?.cpuSeconds ?? NaN, rss: mem?.rss ?? NaN, peakRss: mem?.peakRss ?? NaN };
}

/**
 * Waits until the controller has nothing to do: queue empty, no worker busy and no
 * reconcile finished between two scrapes `intervalMs` apart.
 */
export async function settle(ctrl: ControllerProcess, intervalMs = 1000, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  for (;;) {
    const m = await ctrl.metrics();
    const done = sumSeries(m, "controller_runtime_reconcile_total");
    const depth = sumSeries(m, "workqueue_depth");
    const active = sumSeries(m, "controller_runtime_active_workers");
    if (depth === 0 && active === 0 && done === last) return;
    last = done;
    if (Date.now() > deadline) return;
    await sleep(intervalMs);
  }
}

/** Sum of a metric over all its label sets. */
export function sumSeries(m: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const [series, value] of m) {
    const brace = series.indexOf("{");
    const n = brace < 0 ? series : series.slice(0, brace);
    if (n !== name) continue;
    if (Object.keys(labels).length) {
      const l = parseLabels(brace < 0 ? "" : series.slice(brace + 1, -1));
      if (!Object.entries(labels).every(([k, v]) => l[k] === v)) continue;
    }
    total += value;
  }
  return total;
}

/** A histogram's buckets (le => cumulative count) from a scrape. */
export function histogram(m: Map<string, number>, name: string): { le: number; count: number }[] {
  const by = new Map<number, number>();
  for (const [series, value] of m) {
    if (!series.startsWith(`${name}_bucket{`)) continue;
    const le = parseLabels(series.slice(series.indexOf("{") + 1, -1)).le;
    const bound = le === "+Inf" ? Infinity : Number(le);
    by.set(bound, (by.get(bound) ?? 0) + value);
  }
  return [...by].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
}

/** Quantile of the difference of two histogram scrapes, interpolated within buckets (as PromQL does). */
export function histogramQuantile(
  before: { le: number; count: number }[],
  after: { le: number; count: number }[],
  q: number,
): number {
  const b = new Map(before.map((x) => [x.le, x.count]));
  const d = after.map((x) => ({ le: x.le, count: x.count - (b.get(x.le) ?? 0) }));
  const total = d.at(-1)?.count ?? 0;
  if (total === 0) return NaN;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const { le, count } of d) {
    if (count >= rank) {
      if (le === Infinity) return prevLe;
      return prevLe + ((le - prevLe) * (rank - prevCount)) / Math.max(1, count - prevCount);
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

export interface ControllerTree {
  /** The file node runs: <root>/controller/src/main.ts, or <root>/dist/controller/src/main.js. */
  entry: string;
  root: string;
  description: string;
  remove(): void;
}

const TREE_PATHS = ["package.json", "tsconfig.json", "tsconfig.build.json", "controller", "crds", "examples"];

/**
 * The controller under test. By default this checkout's controller/src/main.ts as it is.
 * `ref`: a snapshot of a git revision (git archive into a temp dir sharing this checkout's
 * node_modules), so that figures belong to a commit and not to a working tree others are
 * editing. `root`: another tree (e.g. one with a proposed fix applied). `build: "dist"`:
 * compiled with tsconfig.build.json and run as JavaScript, as the container image runs it
 * (in a temp copy, never in this checkout's dist/).
 */
export function prepareController(opts: {
  ref?: string;
  root?: string;
  build: "ts" | "dist";
}): ControllerTree {
  const source = opts.root ?? projectRoot;
  let description = opts.root ? `tree ${opts.root}` : "this working tree";
  if (!opts.ref && opts.build === "ts") {
    return { entry: join(source, "controller/src/main.ts"), root: source, description, remove: () => {} };
  }
  const root = mkdtempSync(join(tmpdir(), "cc-bench-controller-"));
  try {
    if (opts.ref) {
      const sha = execFileSync("git", ["rev-parse", "--short", opts.ref], {
        cwd: source,
        encoding: "utf8",
      }).trim();
      const tar = execFileSync("git", ["archive", "--format=tar", opts.ref, ...TREE_PATHS], {
        cwd: source,
        maxBuffer: 512 * 1024 * 1024,
      });
      execFileSync("tar", ["-x", "-C", root], { input: tar });
      description = `${opts.ref} = ${sha} (git archive)`;
    } else {
      // A tree without its own tsconfig files compiles with this checkout's.
      for (const p of TREE_PATHS)
        cpSync(existsSync(join(source, p)) ? join(source, p) : join(projectRoot, p), join(root, p), {
          recursive: true,
        });
    }
    symlinkSync(join(projectRoot, "node_modules"), join(root, "node_modules"));
    if (opts.build === "dist") {
      execFileSync(join(projectRoot, "node_modules/.bin/tsc"), ["-p", join(root, "tsconfig.build.json")], {
        cwd: root,
        stdio: "pipe",
      });
      description += ", compiled to JavaScript (tsconfig.build.json)";
    }
  } catch (err) {
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
  return {
    entry: join(root, opts.build === "dist" ? "dist/controller/src/main.js" : "controller/src/main.ts"),
    root,
    description,
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}
