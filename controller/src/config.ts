// The controller's configuration: flags win over environment variables, which win over
// defaults. Everything is checked here, once, with an error that names the flag.
import { parseArgs } from "node:util";
import { LOG_FORMATS, versionLine, type LogFormat } from "./observability/logger.ts";

export interface Config {
  kubeconfig: string | undefined;
  databaseUrl: string | undefined;
  dataDir: string;
  concurrency: number;
  resyncMs: number;
  watchNamespaces: string[];
  labelSelector: string | undefined;
  enabledFeatures: Set<string>;
  logLevel: string;
  logFormat: LogFormat;
  stallMs: number;
  instanceRetentionMs: number;
  auditRetentionMs: number;
  retentionIntervalMs: number;
  leaderElect: boolean;
  leaderElectionNamespace: string;
  leaderElectionId: string;
  /** host:port, or undefined when switched off ("0"). */
  metricsAddress: { host: string; port: number } | undefined;
  healthAddress: { host: string; port: number } | undefined;
  webhookPort: number | undefined;
  webhookCertDir: string;
  breakerThreshold: number;
  breakerCooldownMs: number;
  breakerRetryMs: number;
  /** /metrics over HTTPS behind TokenReview + SubjectAccessReview (observability/secureMetrics.ts). */
  metricsSecure: boolean;
  /** tls.crt and tls.key for the secure metrics server; undefined: self-signed. */
  metricsCertDir: string | undefined;
}

export class ConfigError extends Error {}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) throw new ConfigError(`--${flag}: "${text}" is not a duration (expected e.g. 30s, 10m, 12h, 30d)`);
  return Math.round(Number(m[1]) * UNITS[m[2]!]!);
}

export function positiveInt(flag: string, text: string, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new ConfigError(`--${flag}: "${text}" must be a whole number from 1 to ${max}`);
  return n;
}

export function list(text: string | undefined): string[] {
  return (text ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];

export const FLAGS = {
  kubeconfig: {
    type: "string",
    env: "KUBECONFIG",
    help: "kubeconfig path (default: in-cluster, then ~/.kube/config)",
  },
  "database-url": {
    type: "string",
    env: "DATABASE_URL",
    help: "PostgreSQL URL; without it an embedded PGlite database is used",
  },
  "data-dir": { type: "string", env: "DATA_DIR", help: "PGlite data directory (default .data/pglite)" },
  concurrency: { type: "string", env: "CONCURRENCY", help: "Connectors reconciled at once (default 4)" },
  "resync-period": {
    type: "string",
    env: "RESYNC_PERIOD",
    help: "re-check every Connector this often (default 10m)",
  },
  "watch-namespaces": {
    type: "string",
    env: "WATCH_NAMESPACES",
    help: "comma-separated namespaces (default: all)",
  },
  "label-selector": {
    type: "string",
    env: "LABEL_SELECTOR",
    help: "only Connectors matching this label selector",
  },
  "enable-features": {
    type: "string",
    env: "ENABLE_FEATURES",
    help: "comma-separated feature flags that gate connector types",
  },
  "log-level": { type: "string", env: "LOG_LEVEL", help: "trace|debug|info|warn|error (default info)" },
  "log-format": {
    type: "string",
    env: "LOG_FORMAT",
    help: "json (default): a JSON object a line; console: readable lines, for local runs",
  },
  "watch-stall-timeout": {
    type: "string",
    env: "WATCH_STALL_TIMEOUT",
    help: "reconnect a silent watch after this long (default 2m)",
  },
  "instance-retention": {
    type: "string",
    env: "INSTANCE_RETENTION",
    help: "purge soft-deleted instance rows after this long (default 30d)",
  },
  "audit-retention": {
    type: "string",
    env: "AUDIT_RETENTION",
    help: "purge audit rows after this long (default 365d)",
  },
  "retention-interval": {
    type: "string",
    env: "RETENTION_INTERVAL",
    help: "how often the retention janitor runs (default 1h)",
  },
  "leader-elect": {
    type: "boolean",
    env: "LEADER_ELECT",
    help: "elect a leader with a Lease, so replicas stand by",
  },
  "leader-election-namespace": {
    type: "string",
    env: "POD_NAMESPACE",
    help: "namespace of the Lease (default: the pod's namespace, else default)",
  },
  "leader-election-id": {
    type: "string",
    env: "LEADER_ELECTION_ID",
    help: "name of the Lease; one per shard (default connector-controller)",
  },
  "metrics-bind-address": {
    type: "string",
    env: "METRICS_BIND_ADDRESS",
    help: "/metrics address, 0 = off (default :8080)",
  },
  "health-probe-bind-address": {
    type: "string",
    env: "HEALTH_PROBE_BIND_ADDRESS",
    help: "/healthz and /readyz address, 0 = off (default :8081)",
  },
  "webhook-port": {
    type: "string",
    env: "WEBHOOK_PORT",
    help: "HTTPS port of the validating webhook, 0 = off (default 0)",
  },
  "webhook-cert-dir": {
    type: "string",
    env: "WEBHOOK_CERT_DIR",
    help: "directory with tls.crt and tls.key for the webhook (default /tmp/k8s-webhook-server/serving-certs)",
  },
  "breaker-threshold": {
    type: "string",
    env: "BREAKER_THRESHOLD",
    help: "failed probes in a row that open the breaker (default 3)",
  },
  "breaker-cooldown": {
    type: "string",
    env: "BREAKER_COOLDOWN",
    help: "how long an open breaker pauses probes (default 60s)",
  },
  "failure-retry": {
    type: "string",
    env: "FAILURE_RETRY",
    help: "re-probe a failing connector after (default 10s)",
  },
  "metrics-secure": {
    type: "boolean",
    env: "METRICS_SECURE",
    help: "serve /metrics over HTTPS to callers allowed to get /metrics (TokenReview + SubjectAccessReview)",
  },
  "metrics-cert-dir": {
    type: "string",
    env: "METRICS_CERT_DIR",
    help: "directory with tls.crt and tls.key for secure metrics (default: a self-signed certificate)",
  },
} as const;

export function address(flag: string, text: string): { host: string; port: number } | undefined {
  if (text === "0") return undefined;
  const m = /^(.*):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535)
    throw new ConfigError(`--${flag}: "${text}" is not host:port (e.g. :8080 or 127.0.0.1:8080), or 0`);
  return { host: m[1] || "0.0.0.0", port };
}

function port(flag: string, text: string): number | undefined {
  if (text === "0") return undefined;
  return positiveInt(flag, text, 65535);
}

export type FlagTable = Record<string, { type: "string" | "boolean"; env: string; help: string }>;

/** Parses argv against a flag table: a flag wins over its environment variable. */
export function readFlags<F extends FlagTable>(flags: F, argv: string[], env: NodeJS.ProcessEnv) {
  const options = Object.fromEntries(Object.entries(flags).map(([k, v]) => [k, { type: v.type }])) as Record<
    keyof F,
    { type: "string" | "boolean" }
  >;
  let values: Partial<Record<keyof F, string | boolean>>;
  try {
    values = parseArgs({ args: argv, options: options as never, strict: true }).values as typeof values;
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const get = (name: keyof F): string | undefined => {
    const v = values[name];
    return typeof v === "string" ? v : env[flags[name]!.env] || undefined;
  };
  const flag = (name: keyof F): boolean => {
    const v = values[name];
    if (typeof v === "boolean") return v;
    const e = env[flags[name]!.env];
    if (e === undefined || e === "") return false;
    if (e !== "true" && e !== "false")
      throw new ConfigError(`${flags[name]!.env}: "${e}" must be true or false`);
    return e === "true";
  };
  return { get, flag };
}

/** The log level and database every process of the project shares. */
export function commonSettings(
  get: (name: "log-level" | "log-format" | "database-url") => string | undefined,
) {
  const logLevel = get("log-level") ?? "info";
  if (!LOG_LEVELS.includes(logLevel))
    throw new ConfigError(`--log-level: "${logLevel}" must be one of ${LOG_LEVELS.join(", ")}`);
  const logFormat = get("log-format") ?? "json";
  if (!(LOG_FORMATS as readonly string[]).includes(logFormat))
    throw new ConfigError(`--log-format: "${logFormat}" must be one of ${LOG_FORMATS.join(", ")}`);
  const databaseUrl = get("database-url");
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl))
    throw new ConfigError("--database-url: must be a postgres:// or postgresql:// URL");
  return { logLevel, logFormat: logFormat as LogFormat, databaseUrl };
}

export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): Config {
  const { get, flag } = readFlags(FLAGS, argv, env);
  const { logLevel, logFormat, databaseUrl } = commonSettings(get);
  const labelSelector = get("label-selector");
  return {
    kubeconfig: get("kubeconfig"),
    databaseUrl,
    dataDir: get("data-dir") ?? ".data/pglite",
    concurrency: positiveInt("concurrency", get("concurrency") ?? "4", 256),
    resyncMs: parseDuration("resync-period", get("resync-period") ?? "10m"),
    watchNamespaces: list(get("watch-namespaces")),
    labelSelector: labelSelector || undefined,
    enabledFeatures: new Set(list(get("enable-features"))),
    logLevel,
    logFormat: logFormat as LogFormat,
    stallMs: parseDuration("watch-stall-timeout", get("watch-stall-timeout") ?? "2m"),
    instanceRetentionMs: parseDuration("instance-retention", get("instance-retention") ?? "30d"),
    auditRetentionMs: parseDuration("audit-retention", get("audit-retention") ?? "365d"),
    retentionIntervalMs: parseDuration("retention-interval", get("retention-interval") ?? "1h"),
    leaderElect: flag("leader-elect"),
    leaderElectionNamespace: get("leader-election-namespace") ?? "default",
    leaderElectionId: get("leader-election-id") ?? "connector-controller",
    metricsAddress: address("metrics-bind-address", get("metrics-bind-address") ?? ":8080"),
    healthAddress: address("health-probe-bind-address", get("health-probe-bind-address") ?? ":8081"),
    webhookPort: port("webhook-port", get("webhook-port") ?? "0"),
    webhookCertDir: get("webhook-cert-dir") ?? "/tmp/k8s-webhook-server/serving-certs",
    breakerThreshold: positiveInt("breaker-threshold", get("breaker-threshold") ?? "3", 100),
    breakerCooldownMs: parseDuration("breaker-cooldown", get("breaker-cooldown") ?? "60s"),
    breakerRetryMs: parseDuration("failure-retry", get("failure-retry") ?? "10s"),
    metricsSecure: flag("metrics-secure"),
    metricsCertDir: get("metrics-cert-dir"),
  };
}

export function usageOf(program: string, flags: FlagTable): string {
  const rows: [string, string, string][] = [
    ...Object.entries(flags).map(([flag, v]): [string, string, string] => [`--${flag}`, v.env, v.help]),
    ["--help", "", "print these flags and exit"],
    ["--version", "", "print the version and commit and exit"],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  const lines = rows.map(([flag, env, help]) => `  ${flag.padEnd(w0)}  ${env.padEnd(w1)}  ${help}`);
  return `usage: ${program} [flags]\n\nflags (and environment variables):\n${lines.join("\n")}\n`;
}

export function usage(): string {
  return usageOf("connector-controller", FLAGS);
}

/**
 * What to print, exit code 0, instead of starting: the flags for --help (or -h), the
 * version for --version. undefined when neither was asked for. Other flags, even invalid
 * ones, do not matter here: main asks this before loadConfig (which refuses both).
 */
export function informationRequested(
  argv: string[],
  program = "connector-controller",
  help: () => string = usage,
): string | undefined {
  const end = argv.indexOf("--");
  const args = end === -1 ? argv : argv.slice(0, end);
  if (args.includes("--help") || args.includes("-h")) return help();
  if (args.includes("--version")) return versionLine(program);
  return undefined;
}
