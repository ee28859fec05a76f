// The gateway's configuration: flags win over environment variables, which win over
// defaults; everything checked here, once, with an error that names the flag.
import {
  address,
  commonSettings,
  ConfigError,
  parseDuration,
  positiveInt,
  readFlags,
  usageOf,
} from "./config.ts";
import type { RateLimit } from "./api/types.ts";
import type { LogFormat } from "./observability/logger.ts";

export const GATEWAY_FLAGS = {
  kubeconfig: {
    type: "string",
    env: "KUBECONFIG",
    help: "kubeconfig path (default: in-cluster, then ~/.kube/config)",
  },
  "database-url": {
    type: "string",
    env: "DATABASE_URL",
    help: "PostgreSQL URL (shared with the controller and the other replicas)",
  },
  "bind-address": { type: "string", env: "GATEWAY_BIND_ADDRESS", help: "the API's address (default :8090)" },
  "tls-cert-dir": {
    type: "string",
    env: "GATEWAY_TLS_CERT_DIR",
    help: "directory with tls.crt and tls.key: serve HTTPS (default: plain HTTP)",
  },
  "metrics-bind-address": {
    type: "string",
    env: "METRICS_BIND_ADDRESS",
    help: "/metrics address, 0 = off (default :8082)",
  },
  "health-probe-bind-address": {
    type: "string",
    env: "HEALTH_PROBE_BIND_ADDRESS",
    help: "/healthz and /readyz address, 0 = off (default :8083)",
  },
  "log-level": { type: "string", env: "LOG_LEVEL", help: "trace|debug|info|warn|error (default info)" },
  "log-format": {
    type: "string",
    env: "LOG_FORMAT",
    help: "json, or console for readable lines (default json)",
  },
  "watch-namespaces": {
    type: "string",
    env: "WATCH_NAMESPACES",
    help: "comma-separated namespaces whose Connectors it serves (default: all)",
  },
  "max-in-flight": {
    type: "string",
    env: "MAX_IN_FLIGHT",
    help: "calls this replica runs at once; more are refused with 503 (default 512)",
  },
  "rate-limit-per-user": {
    type: "string",
    env: "RATE_LIMIT_PER_USER",
    help: "rps/burst per caller across replicas, e.g. 20/40 (default: none)",
  },
  "rate-limit-per-project": {
    type: "string",
    env: "RATE_LIMIT_PER_PROJECT",
    help: "rps/burst per project across replicas (default: none)",
  },
  "idempotency-ttl": {
    type: "string",
    env: "IDEMPOTENCY_TTL",
    help: "how long an idempotency key answers duplicates (default 24h)",
  },
  "max-retries": {
    type: "string",
    env: "MAX_RETRIES",
    help: "the global cap on retries of one call (default 5)",
  },
  "max-result-bytes": {
    type: "string",
    env: "MAX_RESULT_BYTES",
    help: "the global cap on a result's size (default 10485760)",
  },
  "max-body-bytes": {
    type: "string",
    env: "MAX_BODY_BYTES",
    help: "the largest request body (default 16777216)",
  },
  "job-concurrency": {
    type: "string",
    env: "JOB_CONCURRENCY",
    help: "async jobs this replica runs at once (default 8)",
  },
  "review-cache-ttl": {
    type: "string",
    env: "REVIEW_CACHE_TTL",
    help: "how long TokenReview and SubjectAccessReview answers are reused (default 10s)",
  },
  "breaker-threshold": {
    type: "string",
    env: "BREAKER_THRESHOLD",
    help: "failures in a row that open a connector's breaker (default 3)",
  },
  "breaker-cooldown": {
    type: "string",
    env: "BREAKER_COOLDOWN",
    help: "how long an open breaker refuses calls (default 60s)",
  },
  "key-namespace": {
    type: "string",
    env: "POD_NAMESPACE",
    help: "namespace of the approval and fingerprint key Secrets (default default)",
  },
} as const;

export interface GatewayConfig {
  kubeconfig: string | undefined;
  databaseUrl: string | undefined;
  bindAddress: { host: string; port: number };
  tlsCertDir: string | undefined;
  metricsAddress: { host: string; port: number } | undefined;
  healthAddress: { host: string; port: number } | undefined;
  logLevel: string;
  logFormat: LogFormat;
  watchNamespaces: string[];
  maxInFlight: number;
  perUser: RateLimit | undefined;
  perProject: RateLimit | undefined;
  idempotencyTtlMs: number;
  maxRetries: number;
  maxResultBytes: number;
  maxBodyBytes: number;
  jobConcurrency: number;
  reviewCacheTtlMs: number;
  breakerThreshold: number;
  breakerCooldownMs: number;
  keyNamespace: string;
}

function rate(flag: string, text: string | undefined): RateLimit | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)\/(\d+)$/.exec(text.trim());
  if (!m || Number(m[1]) <= 0 || Number(m[2]) < 1)
    throw new ConfigError(`--${flag}: "${text}" is not rps/burst (e.g. 20/40)`);
  return { rps: Number(m[1]), burst: Number(m[2]) };
}

export function loadGatewayConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const { get } = readFlags(GATEWAY_FLAGS, argv, env);
  const { logLevel, logFormat, databaseUrl } = commonSettings(get);
  const bind = address("bind-address", get("bind-address") ?? ":8090");
  if (!bind) throw new ConfigError("--bind-address: the gateway's API cannot be switched off");
  return {
    kubeconfig: get("kubeconfig"),
    databaseUrl,
    bindAddress: bind,
    tlsCertDir: get("tls-cert-dir"),
    metricsAddress: address("metrics-bind-address", get("metrics-bind-address") ?? ":8082"),
    healthAddress: address("health-probe-bind-address", get("health-probe-bind-address") ?? ":8083"),
    logLevel,
    logFormat,
    watchNamespaces: (get("watch-namespaces") ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
    maxInFlight: positiveInt("max-in-flight", get("max-in-flight") ?? "512", 100_000),
    perUser: rate("rate-limit-per-user", get("rate-limit-per-user")),
    perProject: rate("rate-limit-per-project", get("rate-limit-per-project")),
    idempotencyTtlMs: parseDuration("idempotency-ttl", get("idempotency-ttl") ?? "24h"),
    maxRetries: positiveInt("max-retries", get("max-retries") ?? "5", 10),
    maxResultBytes: positiveInt("max-result-bytes", get("max-result-bytes") ?? "10485760", 1 << 30),
    maxBodyBytes: positiveInt("max-body-bytes", get("max-body-bytes") ?? "16777216", 1 << 30),
    jobConcurrency: positiveInt("job-concurrency", get("job-concurrency") ?? "8", 1024),
    reviewCacheTtlMs: parseDuration("review-cache-ttl", get("review-cache-ttl") ?? "10s"),
    breakerThreshold: positiveInt("breaker-threshold", get("breaker-threshold") ?? "3", 100),
    breakerCooldownMs: parseDuration("breaker-cooldown", get("breaker-cooldown") ?? "60s"),
    keyNamespace: get("key-namespace") ?? "default",
  };
}

export function gatewayUsage(): string {
  return usageOf("connector-gateway", GATEWAY_FLAGS);
}
