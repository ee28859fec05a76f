// The gateway's composition root: wiring only. Same image as the controller, its own
// process and Deployment, as many replicas as wanted: everything shared (limits, breakers,
// idempotency, jobs, approvals, audit) lives in PostgreSQL. The Manager starts the probe
// servers, the informer caches, then the API and the job worker; SIGTERM stops the API
// (in-flight calls finish), then the worker, then flushes the audit rows still waiting.
import { hostname } from "node:os";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { aborted, serverRunnable, type Runnable } from "./api/runnable.ts";
import { systemClock } from "./api/clock.ts";
import { ConnectorError } from "./api/errors.ts";
import { ConfigError } from "./config.ts";
import { runProcess } from "./entrypoint.ts";
import { runOperation } from "./drivers/run.ts";
import { InFlight } from "./gateway/admission.ts";
import { createHttpApi } from "./gateway/http.ts";
import type { InvokeDeps } from "./gateway/invoke.ts";
import { OperationSchemas } from "./gateway/payload.ts";
import { RetryBudget } from "./gateway/retryBudget.ts";
import { runJob } from "./gateway/worker.ts";
import { gatewayUsage, loadGatewayConfig, type GatewayConfig } from "./gatewayConfig.ts";
import { kubeAccessReviews } from "./kube/accessReviews.ts";
import { Caches } from "./kube/caches.ts";
import { connectKube } from "./kube/client.ts";
import { APPROVAL_KEY_SECRET, loadOrCreateFingerprintKey, loadOrCreateKey } from "./kube/hmacKey.ts";
import { CachedReviews } from "./kube/reviews.ts";
import { Manager } from "./kube/runtime/manager.ts";
import { KubeSecretKeys, KubeServiceAccountTokens } from "./kube/serviceAccountTokens.ts";
import { KubeCaBundles, KubeTenantSecrets } from "./kube/tenantSecrets.ts";
import { GatewayMetrics } from "./observability/gatewayMetrics.ts";
import { createLogger, type Logger } from "./observability/logger.ts";
import { startProbeServer } from "./observability/server.ts";
import { resolveCredentials } from "./reconcile/credentials.ts";
import { VaultSecretResolver } from "./secrets/resolver.ts";
import { PgApprovalLedger } from "./store/approvalLedger.ts";
import { PgAuditSink } from "./store/auditBatch.ts";
import { openDatabase, type OpenedDatabase } from "./store/database.ts";
import { PgIdempotencyStore } from "./store/idempotency.ts";
import { CachedInstanceSource } from "./store/instanceSource.ts";
import { PgBossJobQueue } from "./store/jobs.ts";
import { migrateToLatest } from "./store/migrations.ts";
import { PgBreakerStore } from "./store/pgBreakerStore.ts";
import { PgLimiter } from "./store/pgLimiter.ts";

/** JSON nested deeper than this is refused before it is parsed. */
const MAX_JSON_DEPTH = 64;

export interface GatewayStartOptions {
  /** A database opened by the caller (make run shares the controller's embedded one). */
  database?: OpenedDatabase;
}

export type RunningGateway = Awaited<ReturnType<typeof startGateway>>;

export async function startGateway(config: GatewayConfig, log: Logger, opts: GatewayStartOptions = {}) {
  if (!opts.database && !config.databaseUrl)
    throw new ConfigError(
      "--database-url: the gateway needs the PostgreSQL it shares with the controller and its other replicas",
    );
  const database =
    opts.database ??
    (await openDatabase({
      url: config.databaseUrl!,
      onError: (err) => log.warn({ err }, "database connection lost"),
    }));
  await migrateToLatest(database.db);
  const kc = connectKube(config.kubeconfig);
  const metrics = new GatewayMetrics();
  const caches = new Caches(kc, { log, namespaces: config.watchNamespaces });
  const keys = {
    approval: await loadOrCreateKey(
      kc,
      config.keyNamespace,
      APPROVAL_KEY_SECRET,
      "HMAC key of the gateway's approval tokens; deleting it voids every approval",
    ),
    fingerprint: await loadOrCreateFingerprintKey(kc, config.keyNamespace),
  };
  const namespaceLabels = (ns: string) => {
    const n = caches.namespaces.get(ns);
    return n ? (n.metadata.labels ?? {}) : undefined;
  };
  const resolver = new VaultSecretResolver({
    providers: caches.providers,
    tokens: new KubeServiceAccountTokens(kc),
    kubeSecrets: new KubeSecretKeys(kc),
    tenantSecrets: new KubeTenantSecrets(kc),
    caBundleSource: new KubeCaBundles(kc, config.keyNamespace),
    namespaceLabels,
    hmacKey: keys.fingerprint,
    log,
  });
  const reviews = new CachedReviews(kubeAccessReviews(kc), { ttlMs: config.reviewCacheTtlMs });
  const jobs = await PgBossJobQueue.open(database, {
    maxResultBytes: config.maxResultBytes,
    maxRetries: config.maxRetries,
    onError: (err) => log.warn({ err }, "job engine error"),
  });
  const audit = new PgAuditSink(database.db, log, { onWritten: (n) => metrics.auditRowsWritten.inc(n) });
  const inFlight = new InFlight(config.maxInFlight);
  const deps: InvokeDeps = {
    authn: reviews,
    authz: reviews,
    catalog: caches,
    connectors: caches,
    instances: new CachedInstanceSource(database.db),
    run: runOperation,
    credentials: {
      async resolve(connector, version, row, signal) {
        const outcome = await resolveCredentials(
          {
            secrets: resolver,
            oauthClients: {
              client: (provider, type) => caches.providers.get(provider)?.spec.oauthClients?.[type],
            },
            oauthStateKey: keys.fingerprint,
          },
          connector,
          version,
          row,
          false,
          signal,
        );
        if (outcome.kind === "pending")
          throw new ConnectorError(
            "transient",
            "InstanceNotActive",
            "the connector waits for OAuth consent",
            { retryAfterMs: 30_000 },
          );
        return outcome.kind === "resolved" ? outcome.values : undefined;
      },
    },
    breakers: new PgBreakerStore(database.db),
    breakerSettings: { failureThreshold: config.breakerThreshold, cooldownMs: config.breakerCooldownMs },
    schemas: new OperationSchemas(),
    retryBudget: new RetryBudget(),
    maxResultBytes: config.maxResultBytes,
    maxRetries: config.maxRetries,
    limiter: new PgLimiter(database),
    inFlight,
    ...(config.perUser ? { perUser: config.perUser } : {}),
    ...(config.perProject ? { perProject: config.perProject } : {}),
    idempotency: new PgIdempotencyStore(database),
    jobs,
    approvalKey: keys.approval,
    ledger: new PgApprovalLedger(database.db),
    audit,
    idempotencyTtlMs: config.idempotencyTtlMs,
    idempotencyWaitMs: 5_000,
    clock: systemClock,
    log,
    metrics,
    onBreakerTrip: (type) => metrics.breakerTrips.inc({ type }),
    onRetry: (type, operation) => metrics.retries.inc({ type, operation }),
    onQuotaExceeded: (scope) => metrics.quotaExceeded.inc({ scope }),
  };
  metrics.observe({
    inFlight: () => inFlight.current,
    auditPending: () => audit.pending,
    jobCounts: () => jobs.counts(),
  });

  const app = await createHttpApi(deps, {
    bodyLimit: config.maxBodyBytes,
    maxDepth: MAX_JSON_DEPTH,
    log,
    types: () => caches.types.list(),
  });
  const tls = config.tlsCertDir
    ? {
        cert: readFileSync(join(config.tlsCertDir, "tls.crt")),
        key: readFileSync(join(config.tlsCertDir, "tls.key")),
      }
    : undefined;
  const api: Runnable & { address(): string | undefined } = {
    name: "gateway-api",
    async start(signal) {
      await app.listen({
        host: config.bindAddress.host,
        port: config.bindAddress.port,
        ...(tls ? { https: tls } : {}),
      } as never);
      listening();
      await aborted(signal);
      await app.close(); // stops accepting; waits for the calls in flight
    },
    ready: () => isListening,
    address() {
      const a = app.server.address();
      return a && typeof a === "object" ? `${a.address}:${a.port}` : undefined;
    },
  };
  let listening!: () => void;
  const isListening = new Promise<void>((resolve) => (listening = resolve));

  const mgr = new Manager({ log, onLostLeadership: () => {} });
  const metricsServer = config.metricsAddress
    ? serverRunnable("metrics-server", () =>
        startProbeServer({ ...config.metricsAddress!, registry: metrics.registry }),
      )
    : undefined;
  const healthServer = config.healthAddress
    ? serverRunnable("health-server", () =>
        startProbeServer({
          ...config.healthAddress!,
          health: {
            async ready() {
              const checks: Record<string, string> = { informers: caches.isSynced() ? "ok" : "not synced" };
              checks.database = await database.ping().then(
                () => "ok",
                (err: Error) => `unreachable: ${err.message}`,
              );
              return { ok: Object.values(checks).every((v) => v === "ok"), checks };
            },
          },
        }),
      )
    : undefined;
  for (const s of [metricsServer, healthServer]) if (s) mgr.add("servers", s);
  mgr.add("caches", caches);
  // Stopped last of the gateway's own parts: whatever the API and the worker recorded is written.
  mgr.add("leader", { name: "audit-flush", start: (signal) => aborted(signal).then(() => audit.flush()) });
  mgr.add("leader", {
    name: "secret-resolver",
    start: (signal) => aborted(signal).then(() => resolver.close()),
  });
  mgr.add("leader", {
    name: "job-worker",
    start: (signal) =>
      jobs.work((spec, ctx) => runJob(deps, spec, ctx), { concurrency: config.jobConcurrency }, signal),
  });
  mgr.add("leader", api);
  await mgr.start();
  await mgr.leading;
  const addresses = {
    api: api.address()!,
    ...(metricsServer?.address() ? { metrics: metricsServer.address()! } : {}),
    ...(healthServer?.address() ? { health: healthServer.address()! } : {}),
  };
  log.info({ ...addresses, replica: process.env.POD_NAME ?? hostname() }, "gateway started");
  return {
    addresses,
    audit,
    metrics,
    reviews,
    async stop(): Promise<void> {
      log.info("draining: finishing calls in flight");
      await mgr.stop();
      await jobs.close();
      await (deps.idempotency as PgIdempotencyStore).close();
      if (!opts.database) await database.close();
      log.info("stopped");
    },
  };
}

if (import.meta.main)
  runProcess({
    program: "connector-gateway",
    usage: gatewayUsage,
    load: loadGatewayConfig,
    logger: (config) =>
      createLogger({ level: config.logLevel, format: config.logFormat, name: "connector-gateway" }),
    start: (config, log) => startGateway(config, log),
  });
