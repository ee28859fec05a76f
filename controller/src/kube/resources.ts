// The controller's reads and writes of its own resources through the API server.
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import { kubeError } from "./apiErrors.ts";
import { mergePatchOptions } from "./requestOptions.ts";
import {
  FINALIZER,
  GROUP,
  VERSION,
  type Connector,
  type ConnectorStatus,
  type ConnectorType,
  type PolicyTemplate,
} from "../api/types.ts";
import type { ConnectorWriter } from "../reconcile/ports.ts";
import type { KubeObject, ListPage, ListWatchSource } from "./runtime/informer.ts";

export const FIELD_MANAGER = "connector-controller";

export const PLURALS = {
  Connector: "connectors",
  ConnectorType: "connectortypes",
  ConnectorPolicyTemplate: "connectorpolicytemplates",
  SecretProvider: "secretproviders",
} as const;

/** A list+watch source for one of our kinds, cluster-wide or in one namespace. */
export function customObjectSource<T extends KubeObject>(
  kc: KubeConfig,
  plural: string,
  opts: { namespace?: string; labelSelector?: string } = {},
): ListWatchSource<T> {
  const api = kc.makeApiClient(CustomObjectsApi);
  const base = { group: GROUP, version: VERSION, plural };
  const selector = opts.labelSelector ? { labelSelector: opts.labelSelector } : {};
  return {
    watchPath: opts.namespace
      ? `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(opts.namespace)}/${plural}`
      : `/apis/${GROUP}/${VERSION}/${plural}`,
    ...selector,
    async list(cont, limit): Promise<ListPage<T>> {
      const page = cont ? { _continue: cont } : {};
      const body = (
        opts.namespace
          ? await api.listNamespacedCustomObject({
              ...base,
              namespace: opts.namespace,
              limit,
              ...page,
              ...selector,
            })
          : await api.listClusterCustomObject({ ...base, limit, ...page, ...selector })
      ) as { items: T[]; metadata: { resourceVersion: string; continue?: string } };
      return {
        items: body.items,
        resourceVersion: body.metadata.resourceVersion,
        continue: body.metadata.continue,
      };
    },
  };
}

/** Namespaces (for SecretProviders' namespaceSelector): their labels, nothing else. */
export interface NamespaceObject {
  metadata: { name: string; labels?: Record<string, string>; resourceVersion?: string };
}

export function namespaceSource(kc: KubeConfig): ListWatchSource<NamespaceObject> {
  const api = kc.makeApiClient(CoreV1Api);
  return {
    watchPath: "/api/v1/namespaces",
    async list(cont, limit) {
      const body = await api.listNamespace({ limit, ...(cont ? { _continue: cont } : {}) });
      return {
        items: body.items.map((n) => ({
          metadata: {
            name: n.metadata?.name ?? "",
            ...(n.metadata?.labels ? { labels: n.metadata.labels } : {}),
            ...(n.metadata?.resourceVersion ? { resourceVersion: n.metadata.resourceVersion } : {}),
          },
        })),
        resourceVersion: body.metadata?.resourceVersion ?? "",
        ...(body.metadata?._continue ? { continue: body.metadata._continue } : {}),
      };
    },
  };
}

export type ConnectorSource = ListWatchSource<Connector>;
export type ConnectorTypeSource = ListWatchSource<ConnectorType>;
export type PolicyTemplateSource = ListWatchSource<PolicyTemplate>;

/**
 * A JSON merge patch (RFC 7386) that turns `from` into `to`: keys that went away become null
 * at every depth, nested objects are patched key by key, arrays (the condition list) are
 * replaced whole.
 */
export function mergePatch(
  from: Record<string, unknown> | undefined,
  to: Record<string, unknown>,
): Record<string, unknown> {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    !!v && typeof v === "object" && !Array.isArray(v);
  const patch: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(to)) {
    const before = from?.[key];
    patch[key] = isObject(value) && isObject(before) ? mergePatch(before, value) : value;
  }
  for (const key of Object.keys(from ?? {})) if (!(key in to)) patch[key] = null;
  return patch;
}

export class KubeConnectorWriter implements ConnectorWriter {
  readonly #api: CustomObjectsApi;
  readonly #observe: (c: Connector) => void;
  statusWrites = 0;

  /** `observe` receives each object the API server returns, to refresh the informer cache. */
  constructor(kc: KubeConfig, observe: (c: Connector) => void = () => {}) {
    this.#api = kc.makeApiClient(CustomObjectsApi);
    this.#observe = observe;
  }

  async writeStatus(c: Connector, status: ConnectorStatus, signal?: AbortSignal): Promise<void> {
    const body = {
      status: mergePatch(c.status as Record<string, unknown> | undefined, status as Record<string, unknown>),
    };
    const updated = (await this.#api
      .patchNamespacedCustomObjectStatus(
        { ...this.#ref(c), body, fieldManager: FIELD_MANAGER },
        mergePatchOptions(signal),
      )
      .catch((err: unknown) => {
        throw kubeError(err, "status update failed");
      })) as Connector;
    this.statusWrites++;
    this.#observe(updated);
  }

  async addFinalizer(c: Connector, signal?: AbortSignal): Promise<void> {
    await this.#patchFinalizers(c, [...(c.metadata.finalizers ?? []), FINALIZER], signal);
  }

  async removeFinalizer(c: Connector, signal?: AbortSignal): Promise<void> {
    await this.#patchFinalizers(
      c,
      (c.metadata.finalizers ?? []).filter((f) => f !== FINALIZER),
      signal,
    );
  }

  /** resourceVersion in the patch makes it a compare-and-swap: a concurrent change => 409, retried. */
  async #patchFinalizers(c: Connector, finalizers: string[], signal?: AbortSignal): Promise<void> {
    const body = { metadata: { finalizers, resourceVersion: c.metadata.resourceVersion } };
    const updated = (await this.#api
      .patchNamespacedCustomObject(
        { ...this.#ref(c), body, fieldManager: FIELD_MANAGER },
        mergePatchOptions(signal),
      )
      .catch((err: unknown) => {
        throw kubeError(err, "finalizer update failed");
      })) as Connector;
    c.metadata.finalizers = updated.metadata.finalizers ?? [];
    c.metadata.resourceVersion = updated.metadata.resourceVersion;
    this.#observe(updated);
  }

  #ref(c: Connector) {
    return {
      group: GROUP,
      version: VERSION,
      plural: PLURALS.Connector,
      namespace: c.metadata.namespace ?? "",
      name: c.metadata.name,
    };
  }
}
