// The composition root: configuration, logger, database, Kubernetes client, controller.
import { randomUUID } from "node:crypto";
import { KubeConfig } from "@kubernetes/client-node";
import { ConfigSchemaCache } from "./catalog/configSchemas.ts";
import { ConfigError, loadConfig, usage, type Config } from "./config.ts";
import { ConnectorController } from "./kube/controller.ts";
import { KubeEventRecorder } from "./kube/events.ts";
import { KubeConnectorWriter } from "./kube/resources.ts";
import { createLogger, type Logger } from "./observability/logger.ts";
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
  stop(): Promise<void>;
}

export async function startController(config: Config, log: Logger): Promise<Running> {
  const database = await openDatabase(
    config.databaseUrl ? { url: config.databaseUrl } : { dataDir: config.dataDir },
  );
  const applied = await migrateToLatest(database.db);
  log.info({ dialect: database.dialect, migrations: applied.map((m) => m.migrationName) }, "database ready");

  const kc = new KubeConfig();
  if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
  else kc.loadFromDefault();
  log.info(
    {
      server: kc.getCurrentCluster()?.server,
      namespaces: config.watchNamespaces.length ? config.watchNamespaces : "all",
    },
    "connecting to Kubernetes",
  );

  const controller = new ConnectorController({
    kc,
    log,
    concurrency: config.concurrency,
    resyncMs: config.resyncMs,
    namespaces: config.watchNamespaces,
    stallMs: config.stallMs,
    ...(config.labelSelector ? { labelSelector: config.labelSelector } : {}),
  });
  await controller.startInformers();
  log.info({ connectors: controller.allConnectors().length, types: controller.types.size }, "caches synced");

  const store = createInstanceStore(database.db);
  const writer = new KubeConnectorWriter(kc, (c) => controller.observe(c));
  const reconciler = new Reconciler({
    catalog: controller,
    schemas: new ConfigSchemaCache(),
    store,
    writer,
    events: new KubeEventRecorder(kc, log),
    clock: { now: () => new Date() },
    enabledFeatures: config.enabledFeatures,
  });
  controller.startWorkers(reconciler);
  const listener = await listenForExternalChanges(database, {
    log,
    onChange: (key) => controller.queue.add(key),
    onResubscribed: () => controller.resyncAll(),
  });
  const janitor = startJanitor(store, config, log);
  log.info({ concurrency: config.concurrency }, "controller started");

  return {
    controller,
    writer,
    async stop() {
      log.info("draining: finishing running reconciles");
      clearInterval(janitor);
      await listener.close();
      await controller.stop();
      await database.close();
      log.info("stopped");
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

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, "/"))) {
  main().catch((err: unknown) => {
    process.stderr.write(`connector-controller: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  });
}
