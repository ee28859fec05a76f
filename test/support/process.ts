// Processes the tests start: one way to spawn a server with its output captured (to a log
// file, or kept in memory line by line), to stop it (a signal, then SIGKILL after a grace
// period) and to be sure it does not outlive the test process; and one way to run a command
// to completion and collect what it printed.
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ProcessOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  uid?: number;
  gid?: number;
  /** Append stdout and stderr to this file (a header line per start); else keep them in memory. */
  logFile?: string;
  /** Each line of output as it comes (without logFile). */
  onLine?: (line: string, stream: "stdout" | "stderr") => void;
  /** Sent when the test process exits with this one still running (default SIGKILL). */
  exitSignal?: NodeJS.Signals;
}

export interface TestProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly running: boolean;
  /** "exited with code 1", "killed by SIGKILL", "failed to start: …" once it has gone. */
  readonly exitInfo: string | undefined;
  readonly exited: Promise<Exit>;
  /** The last lines of its output (stderr lines prefixed "stderr: "). */
  tail(lines?: number): string;
  /** `signal`, then SIGKILL after graceMs; resolves once it has exited. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<Exit>;
}

const KEPT_LINES = 200;

export function startProcess(
  name: string,
  bin: string,
  args: string[],
  opts: ProcessOptions = {},
): TestProcess {
  const kept: string[] = [];
  const keep = (line: string): void => {
    kept.push(line);
    if (kept.length > KEPT_LINES) kept.shift();
  };
  let child: ChildProcess;
  if (opts.logFile !== undefined) {
    const fd = fs.openSync(opts.logFile, "a");
    try {
      fs.writeSync(fd, `\n==== ${new Date().toISOString()} ${bin} ${args.join(" ")}\n`);
      child = spawn(bin, args, { ...spawnOptions(opts), stdio: ["ignore", fd, fd] });
    } finally {
      fs.closeSync(fd);
    }
  } else {
    child = spawn(bin, args, { ...spawnOptions(opts), stdio: ["ignore", "pipe", "pipe"] });
    for (const stream of ["stdout", "stderr"] as const)
      eachLine(child[stream]!, (line) => {
        keep(stream === "stderr" ? `stderr: ${line}` : line);
        opts.onLine?.(line, stream);
      });
  }

  let exitInfo: string | undefined;
  const exited = new Promise<Exit>((resolve) => {
    // "close", not "exit": by then its output has been read to the end.
    child.once("close", (code, signal) => {
      exitInfo ??= signal ? `killed by ${signal}` : `exited with code ${code}`;
      resolve({ code, signal });
    });
    child.once("error", (err) => {
      exitInfo ??= `failed to start: ${err.message}`;
      resolve({ code: null, signal: null });
    });
  });

  const proc: TestProcess = {
    name,
    child,
    get running() {
      return exitInfo === undefined;
    },
    get exitInfo() {
      return exitInfo;
    },
    exited,
    tail(lines = 40) {
      if (opts.logFile === undefined) return kept.slice(-lines).join("\n");
      try {
        return lastLines(fs.readFileSync(opts.logFile, "utf8"), lines);
      } catch {
        return "(no log)";
      }
    },
    async stop(signal = "SIGTERM", graceMs = 10_000) {
      if (exitInfo === undefined) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        await exited;
        clearTimeout(timer);
      }
      return exited;
    },
  };
  live.set(proc, opts.exitSignal ?? "SIGKILL");
  void exited.then(() => live.delete(proc));
  installExitHooks();
  return proc;
}

function spawnOptions(opts: ProcessOptions) {
  return {
    env: opts.env ?? process.env,
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
    ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
  };
}

function eachLine(stream: NodeJS.ReadableStream, fn: (line: string) => void): void {
  let buf = "";
  stream.on("data", (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      fn(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  stream.on("end", () => {
    if (buf !== "") fn(buf);
    buf = "";
  });
}

export function lastLines(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

// ---- nothing outlives the test process --------------------------------------------------

const live = new Map<TestProcess, NodeJS.Signals>();
let hooksInstalled = false;

function killLive(): void {
  for (const [p, signal] of live) if (p.running) p.child.kill(signal);
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", killLive);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = (): void => {
      killLive();
      process.removeListener(sig, onSignal);
      // Keep the default behaviour (terminate) unless someone else handles the signal.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

// ---- a command run to completion -------------------------------------------------------

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end. Never throws: a failure to start is code 127, a kill 128. */
export function runCommand(
  cmd: string,
  args: string[],
  o: { input?: string; timeoutMs?: number; stderrTo?: NodeJS.WritableStream; env?: NodeJS.ProcessEnv } = {},
): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], env: o.env ?? process.env });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => {
      stderr += c;
      o.stderrTo?.write(c);
    });
    const timer = o.timeoutMs ? setTimeout(() => child.kill("SIGKILL"), o.timeoutMs) : undefined;
    child.on("error", (err) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: `${stderr}${cmd}: ${err.message}\n` });
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout,
        stderr: signal ? `${stderr}${cmd} killed by ${signal}\n` : stderr,
      });
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(o.input ?? "");
  });
}
