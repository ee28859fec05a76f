import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pino, type Logger as PinoLogger } from "pino";
import { ConnectorError, errorChainMessage } from "../api/errors.ts";
import { projectRoot } from "../api/paths.ts";
import type { Config } from "../config.ts";

// Secret values never reach a log line: anything under these keys is censored, wherever
// a careless `log.info({ credentials })` puts it.
export const REDACT_PATHS = [
  "password",
  "token",
  "secret",
  "credentials.values",
  "*.password",
  "*.token",
  "*.secret",
  "*.values",
  "*.clientToken",
  "*.client_token",
  "*.authorization",
  "*.Authorization",
  "*.headers",
  "*.*.password",
  "*.*.token",
  "*.*.headers",
  'headers["x-vault-token"]',
];

export type Logger = PinoLogger;

/** json: one JSON object a line (production); console: one readable line an entry (local runs). */
export const LOG_FORMATS = ["json", "console"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LoggerOptions {
  /** The process's name on every line (default connector-controller). */
  name?: string;
  level?: string;
  format?: LogFormat;
  destination?: NodeJS.WritableStream;
  /** console format only: colour the level (default: when the destination is a terminal and NO_COLOR is unset). */
  color?: boolean;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const destination = opts.destination ?? process.stdout;
  const color = opts.color ?? ((destination as { isTTY?: boolean }).isTTY === true && !process.env.NO_COLOR);
  return pino(
    {
      name: opts.name ?? "connector-controller",
      level: opts.level ?? "info",
      redact: { paths: REDACT_PATHS, censor: "[REDACTED]" },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      // "level":"warn" rather than 40: what people and log pipelines search for.
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: serializeError, error: serializeError },
    },
    opts.format === "console" ? consoleStream(destination, color) : destination,
  );
}

/**
 * The `err` of a log line: its type, the message with its causes and their codes ("fetch
 * failed: connect ECONNREFUSED 127.0.0.1:6443"; "…: lookup failed (ENOTFOUND)"), its class
 * and reason when it is ours, else the stack. Never the error's other fields, which pino's
 * own serializer copies: client libraries hang request configs, headers and response bodies
 * on their errors (axios-based clients carry request headers, tokens included). Anything that is not an Error (a
 * message already taken from one) passes as it is.
 */
export function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const out: Record<string, unknown> = {
    type: err.name && err.name !== "Error" ? err.name : err.constructor?.name || "Error",
    message: errorChainMessage(err),
  };
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" || typeof code === "number") out.code = code;
  if (err instanceof ConnectorError) {
    // A classified failure is expected (a retry loop may log it every few seconds): its
    // class, reason and causes say what happened, and the stack of where it was wrapped
    // adds nothing.
    out.class = err.errorClass;
    out.reason = err.reason;
    if (err.providerStatusCode !== undefined) out.statusCode = err.providerStatusCode;
  } else if (err.stack) {
    out.stack = err.stack;
  }
  return out;
}

// ---- console format ------------------------------------------------------------------

const LEVEL_COLORS: Record<string, string> = {
  trace: "\x1b[90m",
  debug: "\x1b[36m",
  info: "\x1b[32m",
  warn: "\x1b[33m",
  error: "\x1b[31m",
  fatal: "\x1b[35m",
};
const HIDDEN = new Set(["level", "time", "msg", "pid", "name", "hostname"]);

function consoleValue(v: unknown): string {
  if (typeof v === "string") return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

/**
 * One pino JSON line as `10:04:05.123 WARN  list/watch failed; retrying informer=connectors
 * err="fetch failed: connect ECONNREFUSED 127.0.0.1:6443"`. It formats what pino wrote, so
 * serializers and redaction have already been applied. An error's stack follows, indented,
 * on error and fatal lines.
 */
export function formatConsoleLine(json: string, color = false): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith("\n") ? json : `${json}\n`;
  }
  const level = String(entry.level ?? "info");
  const time = typeof entry.time === "string" ? entry.time.slice(11, 23) : "";
  const tag = level.toUpperCase().padEnd(5);
  const fields: string[] = [];
  let stack: string | undefined;
  for (const [k, v] of Object.entries(entry)) {
    if (HIDDEN.has(k)) continue;
    if ((k === "err" || k === "error") && v && typeof v === "object") {
      const e = v as { message?: unknown; stack?: unknown };
      fields.push(`${k}=${consoleValue(e.message)}`);
      if ((level === "error" || level === "fatal") && typeof e.stack === "string")
        stack = e.stack
          .split("\n")
          .slice(1)
          .map((l) => `    ${l.trim()}`)
          .join("\n");
      continue;
    }
    fields.push(`${k}=${consoleValue(v)}`);
  }
  const paint = (s: string) => (color ? `${LEVEL_COLORS[level] ?? ""}${s}\x1b[0m` : s);
  const line = [time, paint(tag), String(entry.msg ?? ""), ...fields].filter(Boolean).join(" ");
  return `${line}\n${stack ? `${stack}\n` : ""}`;
}

function consoleStream(destination: NodeJS.WritableStream, color: boolean): NodeJS.WritableStream {
  return {
    write: (chunk: string) => destination.write(formatConsoleLine(chunk.trimEnd(), color)),
  } as unknown as NodeJS.WritableStream;
}

// ---- build information and the start-up line --------------------------------------------

export interface BuildInfo {
  version: string;
  /** The source commit: GIT_COMMIT (set by the image build), else the checkout's HEAD, else "unknown". */
  commit: string;
  node: string;
}

let cachedBuild: BuildInfo | undefined;

// The commit comes from GIT_COMMIT, which the image build sets (docker build --build-arg
// GIT_COMMIT=$(git rev-parse HEAD)) and CI can set for any run. A checkout (make run,
// tests, `node controller/src/main.ts`) has no build step that could write it down, so
// there the checkout's own HEAD answers; the image has no .git and no git.
function commitOf(env: NodeJS.ProcessEnv): string {
  const fromEnv = env.GIT_COMMIT?.trim();
  if (fromEnv) return fromEnv;
  if (!existsSync(join(projectRoot, ".git"))) return "unknown";
  try {
    return execFileSync("git", ["rev-parse", "HEAD"], {
      cwd: projectRoot,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 2_000,
    }).trim();
  } catch {
    return "unknown";
  }
}

/** Version (package.json), commit and Node version of this build. */
export function buildInfo(env: NodeJS.ProcessEnv = process.env): BuildInfo {
  if (env !== process.env) return readBuildInfo(env);
  cachedBuild ??= readBuildInfo(env);
  return cachedBuild;
}

function readBuildInfo(env: NodeJS.ProcessEnv): BuildInfo {
  const pkg = JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")) as { version?: string };
  return { version: pkg.version ?? "0.0.0", commit: commitOf(env), node: process.version };
}

/** `connectorctl 0.1.0 (commit 1a2b3c4d5e6f, node v24.2.0)`: the answer to --version. */
export function versionLine(program: string, info: BuildInfo = buildInfo()): string {
  const commit = /^[0-9a-f]{13,}$/.test(info.commit) ? info.commit.slice(0, 12) : info.commit;
  return `${program} ${info.version} (commit ${commit}, node ${info.node})\n`;
}

// Keys that could hold a secret are left out of the start-up line altogether.
const SECRET_KEY = /password|passwd|secret|token|credential|(^|[a-z])key$/i;

/** A URL without its password: postgres://app:***@db:5432/connectors (and ?password=***). */
function withoutPassword(value: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value;
  try {
    const u = new URL(value);
    let masked = false;
    if (u.password) {
      u.password = "***";
      masked = true;
    }
    for (const name of [...u.searchParams.keys()])
      if (SECRET_KEY.test(name) || /^ssl(key|password)$/i.test(name)) {
        u.searchParams.set(name, "***");
        masked = true;
      }
    return masked ? u.toString() : value;
  } catch {
    return value;
  }
}

/** The effective configuration as a log field: Sets as lists, secrets omitted, URLs without passwords. */
export function describeConfig(config: Config | Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) {
    if (SECRET_KEY.test(k)) continue;
    if (v instanceof Set) out[k] = [...(v as Set<unknown>)].map(String).sort();
    else if (typeof v === "string") out[k] = withoutPassword(v);
    else out[k] = v ?? null; // not set: null, so that the line still names the setting
  }
  return out;
}

/** The first line a controller logs: what runs (version, commit) and with which settings. */
export function logStartup(log: Logger, config: Config, info: BuildInfo = buildInfo()): void {
  log.info(
    { version: info.version, commit: info.commit, node: info.node, config: describeConfig(config) },
    "starting connector-controller",
  );
}
