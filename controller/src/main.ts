// The composition root: configuration, logger, database, Kubernetes client, metrics and
// probes, leader election, controller.
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { KubeConfig } from "@kubernetes/client-node";
import { ConfigSchemaCache } from "./catalog/configSchemas.ts";
import type { SecretRef } from "./api/types.ts";
import { ConfigError, loadConfig, usage, type Config } from "./config.ts";
import { reuseConnections } from "./kube/connections.ts";
import { ConnectorController } from "./kube/controller.ts";
import { KubeEventRecorder } from "./kube/events.ts";
import { LeaderElector } from "./kube/leaderElection.ts";
import { KubeConnectorWriter } from "./kube/resources.ts";
import { startWebhookServer } from "./kube/webhook.ts";
import { loadOrCreateFingerprintKey } from "./kube/hmacKey.ts";
import { SecretProviderStatusWriter } from "./kube/secretProviderStatus.ts";
import { watchSecretProviders } from "./kube/secretProviders.ts";
import { KubeSecretKeys, KubeServiceAccountTokens } from "./kube/serviceAccountTokens.ts";
import { checkNamespaceAllowed, renderSecretPath } from "./secrets/pathGuard.ts";
import { VaultSecretResolver } from "./secrets/resolver.ts";
import { createLogger, type Logger } from "./observability/logger.ts";
import { Metrics } from "./observability/metrics.ts";
import { startProbeServer } from "./observability/server.ts";
import { createProber } from "./drivers/run.ts";
import { CircuitBreakers } from "./reconcile/health.ts";
import type { InstanceStore } from "./reconcile/ports.ts";
import { Reconciler } from "./reconcile/reconciler.ts";
import { purgeExpired } from "./reconcile/retention.ts";
import { listenForExternalChanges } from "./store/changeListener.ts";
import { openDatabase } from "./store/database.ts";
import { createInstanceStore } from "./store/instanceStore.ts";
import { migrateToLatest } from "./store/migrations.ts";

export interface Running {
  controller: ConnectorController;
  writer: KubeConnectorWriter;
  metrics: Metrics;
  /** Resolves once this replica leads and its workers run (at once without leader election). */
  leading: Promise<void>;
  /** Where /metrics and /healthz+/readyz listen (host:port), when switched on. */
  addresses: { metrics?: string; health?: string };
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Called when leadership is lost; the default exits the process, as client-go's users do. */
  onLostLeadership?: () => void;
}

export async function startController(
  config: Config,
  log: Logger,
  opts: StartOptions = {},
): Promise<Running> {
  const database = await openDatabase(
    config.databaseUrl ? { url: config.databaseUrl } : { dataDir: config.dataDir },
  );
  const applied = await migrateToLatest(database.db);
  log.info({ dialect: database.dialect, migrations: applied.map((m) => m.migrationName) }, "database ready");

  const kc = new KubeConfig();
  if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
  else kc.loadFromDefault();
  reuseConnections(kc);
  log.info(
    {
      server: kc.getCurrentCluster()?.server,
      namespaces: config.watchNamespaces.length ? config.watchNamespaces : "all",
    },
    "connecting to Kubernetes",
  );

  // Metrics read the controller, and the controller reports to metrics.
  const ref: { controller?: ConnectorController } = {};
  const metrics = new Metrics({
    connectors: () => ref.controller?.allConnectors() ?? [],
    processingSince: () => ref.controller?.queue.processingSince() ?? [],
    activeWorkers: () => ref.controller?.activeWorkers ?? 0,
  });
  metrics.maxConcurrent.set({ controller: "connector" }, config.concurrency);
  const controller = new ConnectorController({
    kc,
    log,
    concurrency: config.concurrency,
    resyncMs: config.resyncMs,
    namespaces: config.watchNamespaces,
    stallMs: config.stallMs,
    queueMetrics: metrics.queue(),
    informerMetrics: (name) => metrics.informer(name),
    observer: { finished: (result, seconds) => metrics.reconcileFinished(result, seconds) },
    ...(config.labelSelector ? { labelSelector: config.labelSelector } : {}),
  });
  ref.controller = controller;

  const readiness = {
    async ready() {
      const checks: Record<string, string> = { informers: controller.isSynced() ? "ok" : "not synced" };
      try {
        await database.ping();
        checks.database = "ok";
      } catch (err) {
        checks.database = `unreachable: ${(err as Error).message}`;
      }
      return { ok: Object.values(checks).every((v) => v === "ok"), checks };
    },
  };
  const metricsServer = config.metricsAddress
    ? await startProbeServer({ ...config.metricsAddress, registry: metrics.registry })
    : undefined;
  const healthServer = config.healthAddress
    ? await startProbeServer({ ...config.healthAddress, health: readiness })
    : undefined;
  const servers = [metricsServer, healthServer].filter((s) => s !== undefined);
  const where = (s: typeof metricsServer) => {
    const a = s?.address();
    return a && typeof a === "object" ? `${a.address}:${a.port}` : undefined;
  };
  const addresses = {
    ...(where(metricsServer) ? { metrics: where(metricsServer)! } : {}),
    ...(where(healthServer) ? { health: where(healthServer)! } : {}),
  };
  log.info(addresses, "serving metrics and health probes");
  // Every replica keeps warm caches (a standby takes over without relisting); only the
  // leader runs workers.
  await controller.startInformers();
  log.info({ connectors: controller.allConnectors().length, types: controller.types.size }, "caches synced");

  const schemas = new ConfigSchemaCache();
  const secretRefs = secretRefGuard(controller);
  const webhook = config.webhookPort
    ? await startWebhookServer({
        port: config.webhookPort,
        certDir: config.webhookCertDir,
        ctx: { catalog: controller, schemas, enabledFeatures: config.enabledFeatures, secretRefs },
        log,
      })
    : undefined;

  const store = createInstanceStore(database.db);
  const writer = new KubeConnectorWriter(kc, (c) => controller.observe(c));
  const abort = new AbortController();
  const stops: (() => Promise<void>)[] = [];
  const elector = config.leaderElect
    ? new LeaderElector({
        kc,
        log,
        namespace: config.leaderElectionNamespace,
        name: config.leaderElectionId,
        identity: `${process.env.POD_NAME ?? process.env.HOSTNAME ?? hostname()}_${randomUUID()}`,
      })
    : undefined;
  const lost =
    opts.onLostLeadership ??
    (() => {
      log.error({}, "lost leadership; exiting so that nothing is reconciled twice");
      process.exit(1);
    });

  const lead = async (): Promise<void> => {
    if (elector) {
      log.info({ lease: `${config.leaderElectionNamespace}/${config.leaderElectionId}` }, "waiting to lead");
      if (!(await elector.acquire(abort.signal))) return;
      metrics.leader.set({ name: config.leaderElectionId }, 1);
      void elector.holdUntilLost(abort.signal).then((why) => {
        metrics.leader.set({ name: config.leaderElectionId }, 0);
        if (why === "lost") lost();
      });
    }
    if (elector) {
      // The database fence: a deposed leader still connected to PostgreSQL holds this lock
      // until it exits, so the new one cannot write alongside it.
      const unlock = await database.advisoryLock(
        `connector-controller/${config.leaderElectionNamespace}/${config.leaderElectionId}`,
        abort.signal,
        (err) => {
          log.error({ err: err.message }, "lost the database leader lock");
          lost();
        },
      );
      if (!unlock) return;
      stops.push(unlock);
    }

    // Credentials: the fingerprint key (created once), and a resolver whose Vault identity is
    // the tenant's own service account in each Connector's namespace.
    const hmacKey = await loadOrCreateFingerprintKey(kc, config.leaderElectionNamespace);
    const resolver = new VaultSecretResolver({
      providers: { get: (name) => controller.providers.get(name) },
      tokens: new KubeServiceAccountTokens(kc),
      kubeSecrets: new KubeSecretKeys(kc),
      namespaceLabels: (ns) => {
        const n = controller.namespaces.get(ns);
        return n ? (n.metadata.labels ?? {}) : undefined;
      },
      hmacKey,
      log,
    });
    stops.push(() => resolver.close());
    const stopProviders = watchSecretProviders(
      controller.providers,
      resolver,
      new SecretProviderStatusWriter(kc),
      log,
    );
    stops.push(async () => stopProviders());

    const reconciler = new Reconciler({
      catalog: controller,
      schemas,
      store,
      writer,
      events: new KubeEventRecorder(kc, log, { dropped: () => metrics.eventsDropped.inc() }),
      clock: { now: () => new Date() },
      enabledFeatures: config.enabledFeatures,
      secretRefs,
      breakers: new CircuitBreakers({
        failureThreshold: config.breakerThreshold,
        cooldownMs: config.breakerCooldownMs,
        retryMs: config.breakerRetryMs,
      }),
      metrics: metrics.reconciler(),
      prober: createProber({ log }),
      secrets: resolver,
      oauthClients: {
        client: (provider, type) => controller.providers.get(provider)?.spec.oauthClients?.[type],
      },
      oauthStateKey: hmacKey,
    });
    controller.startWorkers(reconciler);
    const listener = await listenForExternalChanges(database, {
      log,
      onChange: (key) => controller.queue.add(key),
      onResubscribed: () => controller.resyncAll(),
    });
    stops.push(() => listener.close());
    const janitor = startJanitor(store, config, log);
    stops.push(async () => clearInterval(janitor));
    log.info({ concurrency: config.concurrency }, "controller started");
  };
  const leading = lead();

  return {
    controller,
    writer,
    metrics,
    leading,
    addresses,
    async stop() {
      log.info("draining: finishing running reconciles");
      abort.abort();
      await leading.catch(() => {});
      for (const stop of stops.reverse()) await stop();
      await controller.stop();
      await elector?.release();
      if (webhook) await new Promise((r) => webhook.close(r));
      for (const s of servers) {
        s.stopMonitor();
        await new Promise((r) => s.close(r));
      }
      await database.close();
      log.info("stopped");
    },
  };
}

/** The path guard over the providers the controller knows (an unknown provider is checked later). */
function secretRefGuard(controller: ConnectorController) {
  return {
    check(namespace: string, ref: SecretRef) {
      const p = controller.providers.get(ref.provider);
      if (!p) return;
      const ns = controller.namespaces.get(namespace);
      checkNamespaceAllowed(p.metadata.name, p.spec, namespace, ns ? (ns.metadata.labels ?? {}) : undefined);
      renderSecretPath(p.spec.vault ? p.spec.vault.pathTemplate : "{namespace}/{name}", namespace, ref.name);
    },
  };
}

function startJanitor(store: InstanceStore, config: Config, log: Logger): NodeJS.Timeout {
  const policy = {
    instanceRetentionMs: config.instanceRetentionMs,
    auditRetentionMs: config.auditRetentionMs,
  };
  const run = () =>
    purgeExpired(store, policy, new Date(), log, randomUUID()).catch((err: unknown) =>
      log.warn({ err: (err as Error).message }, "retention purge failed; will retry"),
    );
  void run();
  const timer = setInterval(run, config.retentionIntervalMs);
  timer.unref();
  return timer;
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`connector-controller: ${err.message}\n\n${usage()}`);
    process.exit(2);
  }
  const log = createLogger({ level: config.logLevel });
  const running = await startController(config, log);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    running.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: (err as Error).message }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`connector-controller: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  });
}
