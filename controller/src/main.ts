// The controller's composition root: wiring only. Every long-running part is a runnable of
// the Manager (kube/runtime/manager.ts), which starts them in order and stops them in
// reverse: probe servers; informer caches; the admission webhook; then, while this
// replica leads, the database fence, the secret resolver, the SecretProvider and Connector
// controllers, the database change listener and the retention janitor.
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import pRetry from "p-retry";
import { aborted, serverRunnable } from "./api/runnable.ts";
import { systemClock } from "./api/clock.ts";
import { isRetryable, classify } from "./api/errors.ts";
import { ConfigSchemaCache } from "./catalog/configSchemas.ts";
import { loadConfig, usage, type Config } from "./config.ts";
import { runProcess } from "./entrypoint.ts";
import { Caches, BY_INSTANCE, BY_PROVIDER, BY_TEMPLATE, BY_TYPE } from "./kube/caches.ts";
import { kubeAccessReviews } from "./kube/accessReviews.ts";
import { apiServerOf, connectKube } from "./kube/client.ts";
import { KubeEventRecorder } from "./kube/events.ts";
import { loadOrCreateFingerprintKey } from "./kube/hmacKey.ts";
import { KubeConnectorWriter } from "./kube/resources.ts";
import { Controller } from "./kube/runtime/controller.ts";
import { LeaderElector } from "./kube/runtime/leaderElection.ts";
import { Manager } from "./kube/runtime/manager.ts";
import { objectKey } from "./kube/runtime/informer.ts";
import { KubeSecretProviderStatusWriter } from "./kube/secretProviderStatus.ts";
import { KubeSecretKeys, KubeServiceAccountTokens } from "./kube/serviceAccountTokens.ts";
import { KubeCaBundles, KubeTenantSecrets } from "./kube/tenantSecrets.ts";
import { startWebhookServer } from "./kube/webhook.ts";
import { createLogger, logStartup, type Logger } from "./observability/logger.ts";
import { Metrics } from "./observability/metrics.ts";
import { startSecureMetricsServer } from "./observability/secureMetrics.ts";
import { startProbeServer } from "./observability/server.ts";
import { configProblems, createProber } from "./drivers/run.ts";
import { reviewConnector } from "./reconcile/admission.ts";
import { CircuitBreakers } from "./reconcile/breaker.ts";
import { Reconciler } from "./reconcile/reconciler.ts";
import { retentionJanitor } from "./reconcile/retention.ts";
import { secretProviderReconciler } from "./reconcile/secretProvider.ts";
import { secretRefGuard } from "./secrets/pathGuard.ts";
import { VaultSecretResolver } from "./secrets/resolver.ts";
import { breakerChanges, externalChanges } from "./store/changeListener.ts";
import { PgBreakerStore } from "./store/pgBreakerStore.ts";
import { openDatabase, type OpenedDatabase } from "./store/database.ts";
import { createInstanceStore } from "./store/instanceStore.ts";
import { databaseFence } from "./store/leaderFence.ts";
import { migrateToLatest } from "./store/migrations.ts";

export interface StartOptions {
  /** Called when leadership is lost; the default exits the process, as client-go's users do. */
  onLostLeadership?: () => void;
  /** A database opened by the caller, who closes it (make run shares its embedded one with the gateway). */
  database?: OpenedDatabase;
}

export type Running = Awaited<ReturnType<typeof startController>>;

export async function startController(config: Config, log: Logger, opts: StartOptions = {}) {
  const database =
    opts.database ??
    (await openDatabase(config.databaseUrl ? { url: config.databaseUrl } : { dataDir: config.dataDir }));
  const applied = await migrateToLatest(database.db);
  log.info({ dialect: database.dialect, migrations: applied.map((m) => m.migrationName) }, "database ready");
  const store = createInstanceStore(database.db);
  const kc = connectKube(config.kubeconfig);
  log.info(
    { server: apiServerOf(kc), namespaces: config.watchNamespaces.length ? config.watchNamespaces : "all" },
    "connecting to Kubernetes",
  );

  const metrics = new Metrics();
  const caches = new Caches(kc, {
    log,
    namespaces: config.watchNamespaces,
    stallMs: config.stallMs,
    metrics: (name) => metrics.informer(name),
    ...(config.labelSelector ? { labelSelector: config.labelSelector } : {}),
  });
  const namespaceLabels = (ns: string) =>
    caches.namespaces.get(ns)?.metadata.labels ?? (caches.namespaces.get(ns) ? {} : undefined);
  const schemas = new ConfigSchemaCache();
  const secretRefs = secretRefGuard(caches.providers, namespaceLabels);
  const validation = {
    catalog: caches,
    schemas,
    enabledFeatures: config.enabledFeatures,
    secretRefs,
    configProblems,
  };
  const hmacKey = await loadFingerprintKey(kc, config.leaderElectionNamespace, log);
  const resolver = new VaultSecretResolver({
    providers: caches.providers,
    tokens: new KubeServiceAccountTokens(kc),
    kubeSecrets: new KubeSecretKeys(kc),
    tenantSecrets: new KubeTenantSecrets(kc),
    caBundleSource: new KubeCaBundles(kc, config.leaderElectionNamespace),
    namespaceLabels,
    hmacKey,
    log,
  });
  const writer = new KubeConnectorWriter(kc, (c) => caches.observe(c));
  // One breaker per instance, shared with every gateway replica.
  const breakers = new CircuitBreakers(new PgBreakerStore(database.db), {
    failureThreshold: config.breakerThreshold,
    cooldownMs: config.breakerCooldownMs,
    retryMs: config.breakerRetryMs,
  });
  const reconciler = new Reconciler({
    ...validation,
    store,
    writer,
    events: new KubeEventRecorder(kc, log, { dropped: () => metrics.eventsDropped.inc() }),
    clock: systemClock,
    breakers,
    metrics: metrics.reconciler(),
    prober: createProber({ log }),
    secrets: resolver,
    oauthClients: { client: (provider, type) => caches.providers.get(provider)?.spec.oauthClients?.[type] },
    oauthStateKey: hmacKey,
  });

  const connectors = new Controller({
    name: "connector",
    cache: caches.connectors,
    log,
    concurrency: config.concurrency,
    resyncMs: config.resyncMs,
    metrics: {
      queue: metrics.queue(),
      finished: (outcome, seconds) => metrics.reconcileFinished(outcome, seconds),
    },
    // A Connector gone from the cache has been deleted: its finalizer already ran.
    reconcile: async (connector, ctx) => (connector ? reconciler.reconcile({ ...ctx, connector }) : {}),
  });
  caches.onConnectorChange((key) => connectors.enqueue(key));
  const users = (index: string) => (_type: string, o: { metadata: { name: string } }) =>
    caches.connectorKeysBy(index, o.metadata.name).forEach((key) => connectors.enqueue(key));
  caches.types.on(users(BY_TYPE));
  caches.templates.on(users(BY_TEMPLATE));
  caches.providers.on(users(BY_PROVIDER));
  metrics.observe({
    connectors: () => caches.allConnectors(),
    controller: connectors,
    queue: connectors.queue,
  });
  metrics.maxConcurrent.set({ controller: "connector" }, config.concurrency);

  const checkProvider = secretProviderReconciler({
    checker: resolver,
    writer: new KubeSecretProviderStatusWriter(kc),
    clock: systemClock,
  });
  const providers = new Controller({
    name: "secretprovider",
    cache: { get: (name) => caches.providers.get(name), keys: () => caches.providers.list().map(objectKey) },
    log,
    concurrency: 1,
    reconcile: (provider, ctx) => checkProvider(ctx.key, provider, ctx.signal),
  });
  // Its own status writes come back as updates of the same generation: nothing to check.
  caches.providers.on((type, p, old) => {
    if (type !== "update" || old?.metadata.generation !== p.metadata.generation)
      providers.enqueue(p.metadata.name);
  });

  const lost =
    opts.onLostLeadership ??
    (() => {
      log.error({}, "lost leadership; exiting so that nothing is reconciled twice");
      process.exit(1);
    });
  const mgr = new Manager({
    log,
    onLostLeadership: lost,
    onLeading: (leading) => metrics.leader.set({ name: config.leaderElectionId }, leading ? 1 : 0),
    ...(config.leaderElect
      ? {
          election: new LeaderElector({
            kc,
            log,
            namespace: config.leaderElectionNamespace,
            name: config.leaderElectionId,
            identity: `${process.env.POD_NAME ?? process.env.HOSTNAME ?? hostname()}_${randomUUID()}`,
          }),
        }
      : {}),
  });
  const metricsServer = config.metricsAddress
    ? serverRunnable("metrics-server", () =>
        config.metricsSecure
          ? startSecureMetricsServer({
              ...config.metricsAddress!,
              registry: metrics.registry,
              reviewer: kubeAccessReviews(kc),
              ...(config.metricsCertDir ? { certDir: config.metricsCertDir } : {}),
              log,
            })
          : startProbeServer({ ...config.metricsAddress!, registry: metrics.registry }),
      )
    : undefined;
  const healthServer = config.healthAddress
    ? serverRunnable("health-server", () =>
        startProbeServer({
          ...config.healthAddress!,
          health: { ready: () => readiness(caches.isSynced(), () => database.ping()) },
        }),
      )
    : undefined;
  for (const s of [metricsServer, healthServer]) if (s) mgr.add("servers", s);
  mgr.add("caches", caches);
  if (config.webhookPort)
    mgr.add(
      "webhooks",
      serverRunnable("webhook", () =>
        startWebhookServer({
          port: config.webhookPort!,
          certDir: config.webhookCertDir,
          review: (request) => reviewConnector(request, validation),
          log,
        }),
      ),
    );
  if (config.leaderElect)
    mgr.add(
      "leader",
      databaseFence(
        database,
        `connector-controller/${config.leaderElectionNamespace}/${config.leaderElectionId}`,
        log,
        lost,
      ),
    );
  mgr.add("leader", {
    name: "secret-resolver",
    start: (signal) => aborted(signal).then(() => resolver.close()),
  });
  mgr.add("leader", providers);
  mgr.add("leader", connectors);
  mgr.add(
    "leader",
    externalChanges(database, {
      log,
      onChange: (key) => connectors.enqueue(key),
      onResubscribed: () => connectors.resyncAll(),
    }),
  );
  // A breaker a gateway call opened or closed: the Connector's status says so at once.
  mgr.add(
    "leader",
    breakerChanges(database, {
      log,
      onChange: (instanceId) => {
        breakers.invalidate(instanceId);
        caches.connectorKeysBy(BY_INSTANCE, instanceId).forEach((key) => connectors.enqueue(key));
      },
      onResubscribed: () => breakers.invalidate(),
    }),
  );
  mgr.add(
    "leader",
    retentionJanitor(
      store,
      { instanceRetentionMs: config.instanceRetentionMs, auditRetentionMs: config.auditRetentionMs },
      log,
      config.retentionIntervalMs,
    ),
  );

  await mgr.start();
  const addresses = {
    ...(metricsServer?.address() ? { metrics: metricsServer.address()! } : {}),
    ...(healthServer?.address() ? { health: healthServer.address()! } : {}),
  };
  log.info(addresses, "serving metrics and health probes");
  log.info({ connectors: caches.allConnectors().length, types: caches.types.size }, "caches synced");
  const leading = mgr.leading.then(() => log.info({ concurrency: config.concurrency }, "controller started"));
  return {
    controller: connectors,
    caches,
    writer,
    metrics,
    /** Resolves once this replica leads and its workers run (at once without leader election). */
    leading,
    /** Where /metrics and /healthz+/readyz listen (host:port), when switched on. */
    addresses,
    async stop(): Promise<void> {
      log.info("draining: finishing running reconciles");
      await mgr.stop();
      if (!opts.database) await database.close();
      log.info("stopped");
    },
  };
}

/** Ready: the caches synced and the database answers (a standby replica is ready too). */
async function readiness(synced: boolean, ping: () => Promise<void>) {
  const checks: Record<string, string> = { informers: synced ? "ok" : "not synced" };
  try {
    await ping();
    checks.database = "ok";
  } catch (err) {
    checks.database = `unreachable: ${(err as Error).message}`;
  }
  return { ok: Object.values(checks).every((v) => v === "ok"), checks };
}

/** The fingerprint key, created once per cluster; retried while the API server is away. */
function loadFingerprintKey(
  kc: Parameters<typeof loadOrCreateFingerprintKey>[0],
  namespace: string,
  log: Logger,
) {
  return pRetry(() => loadOrCreateFingerprintKey(kc, namespace), {
    retries: 8,
    minTimeout: 500,
    maxTimeout: 10_000,
    shouldRetry: ({ error }) => isRetryable(classify(error).errorClass),
    onFailedAttempt: ({ error, retryDelay }) =>
      log.warn(
        { err: classify(error), retryInMs: retryDelay },
        "could not read the fingerprint key; retrying",
      ),
  });
}

if (import.meta.main)
  runProcess({
    program: "connector-controller",
    usage,
    load: loadConfig,
    logger: (config) => {
      const log = createLogger({ level: config.logLevel, format: config.logFormat });
      logStartup(log, config);
      return log;
    },
    start: (config, log) => startController(config, log),
  });
