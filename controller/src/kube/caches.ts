// The controller's informer caches: the catalog (ConnectorTypes, policy templates),
// SecretProviders, Namespaces (their labels) and Connectors (one informer per watched
// namespace, or one for all), with Connectors indexed by the type, template and provider
// they use, so a change to one of those finds its Connectors without a scan.
import { deepEqual } from "../api/canonical.ts";
import type { Logger } from "../api/logger.ts";
import {
  FINALIZER,
  type Connector,
  type ConnectorType,
  type PolicyTemplate,
  type SecretProvider,
} from "../api/types.ts";
import type { CatalogReader } from "../catalog/reader.ts";
import { customObjectSource, namespaceSource, PLURALS, type NamespaceObject } from "./resources.ts";
import { Informer, objectKey, type InformerMetrics } from "./runtime/informer.ts";
import type { KubeConfig } from "@kubernetes/client-node";

export const BY_TYPE = "type";
export const BY_TEMPLATE = "policyTemplate";
export const BY_PROVIDER = "provider";

export interface CachesOptions {
  log: Logger;
  /** Empty: all namespaces. */
  namespaces: string[];
  labelSelector?: string;
  stallMs?: number;
  metrics?: (informer: string) => InformerMetrics;
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

function providersOf(c: Connector): string[] {
  const creds = c.spec.credentials;
  return [creds?.secretRef?.provider, creds?.oauth?.provider].filter((p) => p !== undefined);
}

export class Caches implements CatalogReader {
  readonly name = "caches";
  readonly types: Informer<ConnectorType>;
  readonly templates: Informer<PolicyTemplate>;
  readonly providers: Informer<SecretProvider>;
  readonly namespaces: Informer<NamespaceObject>;
  /** Connector informers by the namespace they watch ("" for all). */
  readonly #connectors = new Map<string, Informer<Connector>>();

  constructor(kc: KubeConfig, opts: CachesOptions) {
    const common = (name: string) => ({
      name,
      log: opts.log,
      ...(opts.stallMs ? { stallMs: opts.stallMs } : {}),
      ...(opts.metrics ? { metrics: opts.metrics(name) } : {}),
    });
    const source = <T extends { metadata: { name: string } }>(plural: string, namespace?: string) =>
      customObjectSource<T>(kc, plural, {
        ...(namespace ? { namespace } : {}),
        ...(plural === PLURALS.Connector && opts.labelSelector ? { labelSelector: opts.labelSelector } : {}),
      });
    this.types = new Informer(kc, source<ConnectorType>(PLURALS.ConnectorType), common("connectortypes"));
    this.templates = new Informer(
      kc,
      source<PolicyTemplate>(PLURALS.ConnectorPolicyTemplate),
      common("connectorpolicytemplates"),
    );
    this.providers = new Informer(
      kc,
      source<SecretProvider>(PLURALS.SecretProvider),
      common("secretproviders"),
    );
    this.namespaces = new Informer(kc, namespaceSource(kc), common("namespaces"));
    for (const ns of opts.namespaces.length ? opts.namespaces : [""]) {
      const inf = new Informer(kc, source<Connector>(PLURALS.Connector, ns), {
        ...common(ns ? `connectors/${ns}` : "connectors"),
        transform: slimManagedFields,
      });
      inf.addIndex(BY_TYPE, (c) => [c.spec.type]);
      inf.addIndex(BY_TEMPLATE, (c) => (c.spec.policyTemplate ? [c.spec.policyTemplate] : []));
      inf.addIndex(BY_PROVIDER, providersOf);
      this.#connectors.set(ns, inf);
    }
  }

  getType(name: string): ConnectorType | undefined {
    return this.types.get(name);
  }

  getPolicyTemplate(name: string): PolicyTemplate | undefined {
    return this.templates.get(name);
  }

  getConnector(key: string): Connector | undefined {
    return this.#connectorInformer(key.slice(0, key.indexOf("/")))?.get(key);
  }

  allConnectors(): Connector[] {
    return [...this.#connectors.values()].flatMap((i) => i.list());
  }

  /** The keys of the Connectors indexed under `value` (e.g. every Connector of type imap). */
  connectorKeysBy(index: string, value: string): string[] {
    return [...this.#connectors.values()].flatMap((i) => i.byIndex(index, value).map(objectKey));
  }

  /** A Connector lookup in the shape the controller runtime reads. */
  get connectors() {
    return {
      get: (key: string) => this.getConnector(key),
      keys: () => this.allConnectors().map(objectKey),
    };
  }

  /** Calls `handler` with the key of every Connector added, deleted, or changed beyond its status. */
  onConnectorChange(handler: (key: string) => void): void {
    for (const inf of this.#connectors.values())
      inf.on((type, obj, old) => {
        if (type === "update" && old && onlyStatusChanged(old, obj)) return;
        handler(objectKey(obj));
      });
  }

  /** Refreshes the cache with an object the API server returned for our own write. */
  observe(c: Connector): void {
    this.#connectorInformer(c.metadata.namespace ?? "")?.observe(c);
  }

  isSynced(): boolean {
    return this.#all().every((i) => i.isSynced());
  }

  async ready(): Promise<void> {
    await Promise.all(this.#all().map((i) => i.waitForSync()));
  }

  /** Lists and watches every kind until `signal` aborts. */
  async start(signal: AbortSignal): Promise<void> {
    await Promise.all(this.#all().map((i) => i.run(signal)));
  }

  #connectorInformer(namespace: string): Informer<Connector> | undefined {
    return this.#connectors.get(namespace) ?? this.#connectors.get("");
  }

  #all(): Informer<{ metadata: { name: string } }>[] {
    return [
      this.types,
      this.templates,
      this.providers,
      this.namespaces,
      ...this.#connectors.values(),
    ] as Informer<{
      metadata: { name: string };
    }>[];
  }
}
