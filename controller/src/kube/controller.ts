// The machinery that drives the reconciler: informers fill caches and enqueue keys, N
// workers take keys from the queue (one worker per key at a time), results and failures
// go back to the queue as requeue-after or rate-limited retries, and a jittered periodic
// resync re-enqueues everything as the backstop.
import { randomUUID } from "node:crypto";
import type { KubeConfig } from "@kubernetes/client-node";
import { deepEqual } from "../api/canonical.ts";
import {
  FINALIZER,
  type Connector,
  type ConnectorType,
  type PolicyTemplate,
  type SecretProvider,
} from "../api/types.ts";
import { classify } from "../api/errors.ts";
import type { CatalogReader } from "../reconcile/ports.ts";
import type { Logger } from "../api/logger.ts";
import type { ReconcileRequest, ReconcileResult } from "../reconcile/reconciler.ts";
import { Informer, objectKey, type InformerMetrics } from "./informer.ts";
import { customObjectSource, namespaceSource, PLURALS, type NamespaceObject } from "./resources.ts";
import { WorkQueue, type QueueMetrics } from "./workqueue.ts";

export interface ReconcileFn {
  reconcile(req: ReconcileRequest): Promise<ReconcileResult>;
}

export interface ReconcileObserver {
  started?(): void;
  finished?(result: "success" | "error" | "requeue" | "requeue_after", seconds: number): void;
}

export interface ControllerOptions {
  kc: KubeConfig;
  log: Logger & { child(bindings: object): Logger };
  concurrency: number;
  resyncMs: number;
  /** Empty: all namespaces. */
  namespaces: string[];
  labelSelector?: string;
  stallMs?: number;
  queueMetrics?: QueueMetrics;
  informerMetrics?: (informer: string) => InformerMetrics;
  observer?: ReconcileObserver;
}

/**
 * Only a status change, or our finalizer being added: nothing the reconciler acts on
 * changed (our own writes echo back as these; the reconcile that added the finalizer
 * carries on, so its echo needs no second pass).
 */
export function onlyStatusChanged(a: Connector, b: Connector): boolean {
  const ma = a.metadata;
  const mb = b.metadata;
  const fa = ma.finalizers ?? [];
  const fb = mb.finalizers ?? [];
  return (
    ma.generation === mb.generation &&
    ma.deletionTimestamp === mb.deletionTimestamp &&
    deepEqual(ma.annotations ?? {}, mb.annotations ?? {}) &&
    deepEqual(ma.labels ?? {}, mb.labels ?? {}) &&
    (deepEqual(fa, fb) || (!fa.includes(FINALIZER) && deepEqual([...fa, FINALIZER], fb)))
  );
}

/**
 * managedFields' fieldsV1 (about half of a Connector's JSON) is read by no one here: the
 * cache keeps who managed what and when (actorOf reads that), not the field sets.
 */
export function slimManagedFields(c: Connector): Connector {
  const mf = c.metadata.managedFields;
  if (!mf?.some((m) => "fieldsV1" in m)) return c;
  c.metadata.managedFields = mf.map(({ manager, operation, time, subresource }) => ({
    ...(manager !== undefined ? { manager } : {}),
    ...(operation !== undefined ? { operation } : {}),
    ...(time !== undefined ? { time } : {}),
    ...(subresource !== undefined ? { subresource } : {}),
  }));
  return c;
}

export class ConnectorController implements CatalogReader {
  readonly queue: WorkQueue;
  readonly types: Informer<ConnectorType>;
  readonly templates: Informer<PolicyTemplate>;
  readonly providers: Informer<SecretProvider>;
  readonly namespaces: Informer<NamespaceObject>;
  readonly connectors = new Map<string, Informer<Connector>>();
  readonly #opts: ControllerOptions;
  #reconciler: ReconcileFn | undefined;
  #workers: Promise<void>[] = [];
  #informerRuns: Promise<void>[] = [];
  #abort = new AbortController();
  #resyncTimer: NodeJS.Timeout | undefined;
  activeWorkers = 0;

  constructor(opts: ControllerOptions) {
    this.#opts = opts;
    this.queue = new WorkQueue({ ...(opts.queueMetrics ? { metrics: opts.queueMetrics } : {}) });
    const common = (name: string) => ({
      name,
      log: opts.log,
      ...(opts.stallMs ? { stallMs: opts.stallMs } : {}),
      ...(opts.informerMetrics ? { metrics: opts.informerMetrics(name) } : {}),
    });
    this.types = new Informer(
      opts.kc,
      customObjectSource<ConnectorType>(opts.kc, PLURALS.ConnectorType),
      common("connectortypes"),
    );
    this.templates = new Informer(
      opts.kc,
      customObjectSource<PolicyTemplate>(opts.kc, PLURALS.ConnectorPolicyTemplate),
      common("connectorpolicytemplates"),
    );
    this.providers = new Informer(
      opts.kc,
      customObjectSource<SecretProvider>(opts.kc, PLURALS.SecretProvider),
      common("secretproviders"),
    );
    this.namespaces = new Informer(opts.kc, namespaceSource(opts.kc), common("namespaces"));
    const scopes = opts.namespaces.length ? opts.namespaces : [""];
    for (const ns of scopes) {
      const source = customObjectSource<Connector>(opts.kc, PLURALS.Connector, {
        ...(ns ? { namespace: ns } : {}),
        ...(opts.labelSelector ? { labelSelector: opts.labelSelector } : {}),
      });
      this.connectors.set(
        ns,
        new Informer(opts.kc, source, {
          ...common(ns ? `connectors/${ns}` : "connectors"),
          transform: slimManagedFields,
        }),
      );
    }

    for (const inf of this.connectors.values()) {
      inf.on((type, obj, old) => {
        if (type === "update" && old && onlyStatusChanged(old, obj)) return;
        this.queue.add(objectKey(obj));
      });
    }
    this.types.on((_t, type) => this.#enqueueUsers((c) => c.spec.type === type.metadata.name));
    this.templates.on((_t, tpl) => this.#enqueueUsers((c) => c.spec.policyTemplate === tpl.metadata.name));
    this.providers.on((_t, p) =>
      this.#enqueueUsers(
        (c) =>
          c.spec.credentials?.secretRef?.provider === p.metadata.name ||
          c.spec.credentials?.oauth?.provider === p.metadata.name,
      ),
    );
  }

  getType(name: string): ConnectorType | undefined {
    return this.types.get(name);
  }

  getPolicyTemplate(name: string): PolicyTemplate | undefined {
    return this.templates.get(name);
  }

  getConnector(key: string): Connector | undefined {
    const ns = key.slice(0, key.indexOf("/"));
    return (this.connectors.get(ns) ?? this.connectors.get(""))?.get(key);
  }

  /** Refreshes the cache with an object the API server returned for our own write. */
  observe(c: Connector): void {
    const ns = c.metadata.namespace ?? "";
    (this.connectors.get(ns) ?? this.connectors.get(""))?.observe(c);
  }

  allConnectors(): Connector[] {
    return [...this.connectors.values()].flatMap((i) => i.list());
  }

  isSynced(): boolean {
    return this.#informers().every((i) => i.isSynced());
  }

  /** Starts the informers and resolves once every cache has synced. */
  async startInformers(): Promise<void> {
    const signal = this.#abort.signal;
    const all = this.#informers();
    this.#informerRuns = all.map((i) => i.run(signal));
    await Promise.all(all.map((i) => i.waitForSync()));
  }

  /** Starts the workers (after the caches synced, so no Connector is judged against a half-read catalog). */
  startWorkers(reconciler: ReconcileFn): void {
    this.#reconciler = reconciler;
    this.resyncAll();
    for (let i = 0; i < this.#opts.concurrency; i++) this.#workers.push(this.#work());
    this.#scheduleResync();
  }

  /** Stops taking work, lets running reconciles finish, stops the watches. */
  async stop(): Promise<void> {
    if (this.#resyncTimer) clearTimeout(this.#resyncTimer);
    this.queue.shutDown();
    await Promise.all(this.#workers);
    this.#abort.abort();
    await Promise.all(this.#informerRuns);
  }

  /** Re-enqueues every Connector (the periodic resync, and after a lost change feed). */
  resyncAll(): void {
    for (const c of this.allConnectors()) this.queue.add(objectKey(c));
  }

  #informers(): Informer<{ metadata: { name: string } }>[] {
    return [
      this.types,
      this.templates,
      this.providers,
      this.namespaces,
      ...this.connectors.values(),
    ] as Informer<{
      metadata: { name: string };
    }>[];
  }

  #enqueueUsers(uses: (c: Connector) => boolean): void {
    for (const c of this.allConnectors()) if (uses(c)) this.queue.add(objectKey(c));
  }

  #scheduleResync(): void {
    const jitter = 1 + (Math.random() - 0.5) * 0.2;
    this.#resyncTimer = setTimeout(() => {
      this.resyncAll();
      this.#scheduleResync();
    }, this.#opts.resyncMs * jitter);
    this.#resyncTimer.unref();
  }

  async #work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      this.activeWorkers++;
      try {
        await this.#process(key);
      } finally {
        this.activeWorkers--;
        this.queue.done(key);
      }
    }
  }

  async #process(key: string): Promise<void> {
    const cached = this.getConnector(key);
    if (!cached) {
      this.queue.forget(key); // gone: its finalizer already ran
      return;
    }
    const reconcileId = randomUUID();
    const log = this.#opts.log.child({ key, reconcileId });
    const started = performance.now();
    this.#opts.observer?.started?.();
    try {
      const result = await this.#reconciler!.reconcile({
        connector: structuredClone(cached),
        reconcileId,
        log,
      });
      this.queue.forget(key);
      if (result.requeueAfterMs !== undefined) this.queue.addAfter(key, result.requeueAfterMs);
      this.#opts.observer?.finished?.(
        result.requeueAfterMs !== undefined ? "requeue_after" : "success",
        (performance.now() - started) / 1000,
      );
    } catch (err) {
      const e = classify(err);
      log.warn(
        { errorClass: e.errorClass, reason: e.reason, err: e.message, retries: this.queue.numRequeues(key) },
        "reconcile will be retried",
      );
      this.queue.addRateLimited(key, e.retryAfterMs ?? 0);
      this.#opts.observer?.finished?.("error", (performance.now() - started) / 1000);
    }
  }
}
