// The controller as a separate process, started the way an operator starts it (node
// controller/src/main.ts with flags): for tests that SIGKILL it or run replicas side by side,
// and for the benchmarks, whose figures must be its own. Its JSON log lines are read as they
// come: the first time each message appears is noted, and waiting for a message fails at
// once, with its last lines, when the process exits.
import { join } from "node:path";
import { projectRoot } from "../../controller/src/api/paths.ts";
import { startProcess, type Exit, type TestProcess } from "./process.ts";
import { eventually } from "./wait.ts";

export interface ControllerProcessOptions {
  kubeconfig: string;
  databaseUrl: string;
  /** Its HOSTNAME (the leader-election identity) and its name in messages. */
  name?: string;
  /** --watch-namespaces (default: every namespace). */
  namespaces?: string[];
  /** --log-level (default debug). */
  logLevel?: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** The file to run (default: this checkout's controller/src/main.ts). */
  entry?: string;
  /** Flags for node itself, e.g. --max-old-space-size=192 or --cpu-prof. */
  nodeArgs?: string[];
  /**
   * Keep every line, raw and parsed, for assertions and secret scans (default true). The
   * benchmarks keep only counts, first times and warnings.
   */
  keepLines?: boolean;
  /** Each parsed line as it comes (kept or not). */
  onLine?: (line: LogLine) => void;
}

export interface LogLine {
  msg?: string;
  key?: string;
  /** pino's level: a number, or its label ("warn") when the logger writes labels. */
  level?: number | string;
  time?: string;
  [k: string]: unknown;
}

export class ControllerProcess {
  readonly name: string;
  readonly process: TestProcess;
  /** Date.now() and performance.now() when it was spawned. */
  readonly spawnedAtWall: number;
  readonly spawnedAt: number;
  /** The first time each message was logged, on this process's performance.now() clock. */
  readonly marks = new Map<string, number>();
  /** Raw stdout and stderr ("stderr: " prefixed) lines, as written (with keepLines). */
  readonly raw: string[] = [];
  /** Every line parsed (a non-JSON line as { msg }) (with keepLines). */
  readonly lines: LogLine[] = [];
  /** Lines at warn level or above (the first 200). */
  readonly warnings: LogLine[] = [];
  lineCount = 0;
  /** host:port of /metrics and the health probes, once the process has logged it. */
  metricsAddress: string | undefined;
  readonly #counts = new Map<string, number>();

  constructor(o: ControllerProcessOptions) {
    this.name = o.name ?? "controller";
    const keepLines = o.keepLines ?? true;
    const args = [
      ...(o.nodeArgs ?? []),
      o.entry ?? join(projectRoot, "controller/src/main.ts"),
      "--kubeconfig",
      o.kubeconfig,
      "--database-url",
      o.databaseUrl,
      "--metrics-bind-address",
      "127.0.0.1:0",
      "--health-probe-bind-address",
      "127.0.0.1:0",
      ...(o.namespaces ? ["--watch-namespaces", o.namespaces.join(",")] : []),
      "--log-level",
      o.logLevel ?? "debug",
      ...(o.args ?? []),
    ];
    this.spawnedAtWall = Date.now();
    this.spawnedAt = performance.now();
    this.process = startProcess(this.name, process.execPath, args, {
      cwd: projectRoot,
      env: { ...process.env, ...(o.name ? { HOSTNAME: o.name } : {}), ...o.env },
      onLine: (text, stream) => {
        if (keepLines) this.raw.push(stream === "stderr" ? `stderr: ${text}` : text);
        const line = stream === "stderr" ? { msg: `stderr: ${text}` } : parse(text);
        this.#line(line, keepLines);
        o.onLine?.(line);
      },
    });
  }

  #line(line: LogLine, keep: boolean): void {
    this.lineCount++;
    if (keep) this.lines.push(line);
    const msg = line.msg ?? "";
    this.#counts.set(msg, (this.#counts.get(msg) ?? 0) + 1);
    if (!this.marks.has(msg)) {
      const wall = line.time ? Date.parse(line.time) : Date.now();
      this.marks.set(msg, this.spawnedAt + (wall - this.spawnedAtWall));
    }
    // Whichever line says where /metrics listens (its `metrics` field, host:port).
    if (typeof line.metrics === "string" && /:\d+$/.test(line.metrics)) this.metricsAddress = line.metrics;
    if (levelOf(line) >= 40 && this.warnings.length < 200) this.warnings.push(line);
  }

  get child() {
    return this.process.child;
  }

  get exited(): Promise<Exit> {
    return this.process.exited;
  }

  get alive(): boolean {
    return this.process.running;
  }

  /** Its last lines, for failure messages. */
  tail(n = 30): string {
    return this.process.tail(n);
  }

  said(msg: string, key?: string): boolean {
    if (key === undefined) return this.marks.has(msg);
    return this.lines.some((l) => l.msg === msg && l.key === key);
  }

  count(msg: string): number {
    return this.#counts.get(msg) ?? 0;
  }

  /** Resolves with the time of `msg`'s first appearance (at once if it already appeared). */
  waitFor(msg: string, timeoutMs = 120_000): Promise<number> {
    return this.#eventually(() => this.marks.get(msg), `log "${msg}"`, timeoutMs);
  }

  /** Until `check` has a value; fails at once, with its last lines, when the process exits. */
  async #eventually<T>(check: () => T | undefined, what: string, timeoutMs: number): Promise<T> {
    try {
      return await eventually(check, `${this.name} to ${what}`, {
        timeoutMs,
        intervalMs: 50,
        giveUpIf: () => this.process.exitInfo,
      });
    } catch (err) {
      throw new Error(`${(err as Error).message}; its last lines:\n${this.tail()}`, { cause: err });
    }
  }

  /** Resolves once its workers run ("controller started"). */
  async started(timeoutMs = 60_000): Promise<void> {
    await this.waitFor("controller started", timeoutMs);
  }

  /** Its /metrics as series name{labels} => value. */
  async metrics(): Promise<Map<string, number>> {
    const address = await this.#eventually(() => this.metricsAddress, "say where /metrics listens", 60_000);
    const text = await (await fetch(`http://${address}/metrics`)).text();
    const out = new Map<string, number>();
    for (const line of text.split("\n")) {
      if (!line || line.startsWith("#")) continue;
      const sp = line.lastIndexOf(" ");
      out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
    }
    return out;
  }

  /** The value of one series of /metrics, e.g. `name{label="x"}` (0 when absent). */
  async metric(series: string): Promise<number> {
    return (await this.metrics()).get(series) ?? 0;
  }

  /** SIGTERM (a clean drain, the lease released), SIGKILL after graceMs. */
  async stop(graceMs = 30_000): Promise<Exit> {
    return this.process.stop("SIGTERM", graceMs);
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<Exit> {
    return this.process.stop(signal, 10_000);
  }
}

/** pino's levels by label (warn and above count as warnings). */
const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

function levelOf(line: LogLine): number {
  return typeof line.level === "number" ? line.level : (LEVELS[line.level ?? ""] ?? 0);
}

function parse(text: string): LogLine {
  try {
    const v: unknown = JSON.parse(text);
    if (v !== null && typeof v === "object") return v as LogLine;
  } catch {
    // not JSON
  }
  return { msg: text };
}
