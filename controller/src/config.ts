// The controller's configuration: flags win over environment variables, which win over
// defaults. Everything is checked here, once, with an error that names the flag.
import { parseArgs } from "node:util";

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
  stallMs: number;
  instanceRetentionMs: number;
  auditRetentionMs: number;
  retentionIntervalMs: number;
}

export class ConfigError extends Error {}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) throw new ConfigError(`--${flag}: "${text}" is not a duration (expected e.g. 30s, 10m, 12h, 30d)`);
  return Math.round(Number(m[1]) * UNITS[m[2]!]!);
}

function positiveInt(flag: string, text: string, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new ConfigError(`--${flag}: "${text}" must be a whole number from 1 to ${max}`);
  return n;
}

function list(text: string | undefined): string[] {
  return (text ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];

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
} as const;

export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): Config {
  const options = Object.fromEntries(Object.entries(FLAGS).map(([k, v]) => [k, { type: v.type }])) as Record<
    keyof typeof FLAGS,
    { type: "string" }
  >;
  let values: Partial<Record<keyof typeof FLAGS, string>>;
  try {
    values = parseArgs({ args: argv, options, strict: true }).values as typeof values;
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const get = (flag: keyof typeof FLAGS): string | undefined =>
    values[flag] ?? (env[FLAGS[flag].env] || undefined);
  const logLevel = get("log-level") ?? "info";
  if (!LOG_LEVELS.includes(logLevel))
    throw new ConfigError(`--log-level: "${logLevel}" must be one of ${LOG_LEVELS.join(", ")}`);
  const databaseUrl = get("database-url");
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl))
    throw new ConfigError("--database-url: must be a postgres:// or postgresql:// URL");
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
    stallMs: parseDuration("watch-stall-timeout", get("watch-stall-timeout") ?? "2m"),
    instanceRetentionMs: parseDuration("instance-retention", get("instance-retention") ?? "30d"),
    auditRetentionMs: parseDuration("audit-retention", get("audit-retention") ?? "365d"),
    retentionIntervalMs: parseDuration("retention-interval", get("retention-interval") ?? "1h"),
  };
}

export function usage(): string {
  const rows = Object.entries(FLAGS).map(
    ([flag, v]) => `  --${flag.padEnd(22)} ${v.env.padEnd(20)} ${v.help}`,
  );
  return `usage: connector-controller [flags]\n\nflags (and environment variables):\n${rows.join("\n")}\n`;
}
