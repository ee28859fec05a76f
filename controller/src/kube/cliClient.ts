// connectorctl's view of the cluster: read Connectors and the catalog, and ask the API server
// what applying an object would make of it (server-side apply, dry run). Nothing here writes.
import {
  ApiException,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { GROUP, VERSION, type Connector, type ConnectorType, type PolicyTemplate } from "../api/types.ts";
import { reuseConnections } from "./connections.ts";
import { kubeError } from "./apiErrors.ts";
import { PLURALS } from "./resources.ts";

/** An object of one of our kinds, as read from a file or the API server. */
export interface KubeDocument {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string; [k: string]: unknown };
  [k: string]: unknown;
}

export interface CliCluster {
  /** The API server's URL, for messages. */
  server: string;
  /** The kubeconfig context's namespace, else "default" (as kubectl). */
  defaultNamespace: string;
  /** Connectors in one namespace or all; with `name`, only those of that name. */
  listConnectors(opts: { namespace?: string; name?: string }): Promise<Connector[]>;
  /** The live object, or undefined when it does not exist. */
  get(doc: KubeDocument): Promise<KubeDocument | undefined>;
  /**
   * What the API server would store if `doc` were applied (server-side apply with
   * `fieldManager`, taking over conflicting fields, strict field validation), without
   * storing it.
   */
  dryRunApply(doc: KubeDocument, fieldManager: string): Promise<KubeDocument>;
  /** The ConnectorTypes and ConnectorPolicyTemplates the cluster holds. */
  catalog(): Promise<{ types: ConnectorType[]; templates: PolicyTemplate[] }>;
}

export interface CliClusterOptions {
  /** A kubeconfig file; default KUBECONFIG, ~/.kube/config, then in-cluster. */
  kubeconfig?: string;
  context?: string;
}

/**
 * kubeError's message, for a person at a terminal: a 401 or 403 is their own credentials',
 * so kubeError's hint about the controller's RBAC is dropped.
 */
function cliError(err: unknown, what: string): Error {
  const e = kubeError(err, what);
  const status = err instanceof ApiException ? err.code : undefined;
  if (status !== 401 && status !== 403) return e;
  // No cause: client-node's ApiException message carries the whole response, headers included.
  return new Error(e.message.replace(/ \(check the controller's RBAC\)$/, ""));
}

export const NAMESPACED_KINDS: ReadonlySet<string> = new Set(["Connector"]);

/** The plural of one of our kinds, or undefined for any other kind. */
export function pluralOf(kind: string): string | undefined {
  return (PLURALS as Record<string, string>)[kind];
}

export function connectCluster(opts: CliClusterOptions = {}): CliCluster {
  const kc = new KubeConfig();
  if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
  else kc.loadFromDefault();
  if (opts.context) {
    if (!kc.getContextObject(opts.context))
      throw new Error(`--context: the kubeconfig has no context "${opts.context}"`);
    kc.setCurrentContext(opts.context);
  }
  reuseConnections(kc);
  const api = kc.makeApiClient(CustomObjectsApi);
  const apply = setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply);
  const server = kc.getCurrentCluster()?.server ?? "(no cluster)";
  const where = (what: string) => `${what} (${server})`;

  const ref = (doc: KubeDocument) => {
    const plural = pluralOf(doc.kind);
    if (!plural) throw new Error(`kind ${doc.kind} is not one of ${Object.keys(PLURALS).join(", ")}`);
    return { group: GROUP, version: VERSION, plural, name: doc.metadata.name };
  };

  async function list<T>(plural: string, extra: { namespace?: string; fieldSelector?: string } = {}) {
    const { namespace, ...rest } = extra;
    const items: T[] = [];
    let cont: string | undefined;
    do {
      const page = {
        group: GROUP,
        version: VERSION,
        plural,
        limit: 500,
        ...rest,
        ...(cont ? { _continue: cont } : {}),
      };
      const body = (
        namespace
          ? await api.listNamespacedCustomObject({ ...page, namespace })
          : await api.listClusterCustomObject(page)
      ) as { items: T[]; metadata?: { continue?: string } };
      items.push(...body.items);
      cont = body.metadata?.continue || undefined;
    } while (cont);
    return items;
  }

  return {
    server,
    defaultNamespace: kc.getContextObject(kc.getCurrentContext())?.namespace || "default",

    async listConnectors({ namespace, name }) {
      try {
        return await list<Connector>(PLURALS.Connector, {
          ...(namespace ? { namespace } : {}),
          ...(name ? { fieldSelector: `metadata.name=${name}` } : {}),
        });
      } catch (err) {
        throw cliError(err, where("listing Connectors"));
      }
    },

    async get(doc) {
      const r = ref(doc);
      try {
        return (await (NAMESPACED_KINDS.has(doc.kind)
          ? api.getNamespacedCustomObject({ ...r, namespace: doc.metadata.namespace ?? "" })
          : api.getClusterCustomObject(r))) as KubeDocument;
      } catch (err) {
        if (err instanceof ApiException && err.code === 404) return undefined;
        throw cliError(err, where(`reading ${doc.kind} ${doc.metadata.name}`));
      }
    },

    async dryRunApply(doc, fieldManager) {
      const r = ref(doc);
      const params = { ...r, body: doc, dryRun: "All", fieldManager, force: true, fieldValidation: "Strict" };
      try {
        return (await (NAMESPACED_KINDS.has(doc.kind)
          ? api.patchNamespacedCustomObject({ ...params, namespace: doc.metadata.namespace ?? "" }, apply)
          : api.patchClusterCustomObject(params, apply))) as KubeDocument;
      } catch (err) {
        throw cliError(err, where(`the API server refused ${doc.kind} ${doc.metadata.name}`));
      }
    },

    async catalog() {
      try {
        const [types, templates] = await Promise.all([
          list<ConnectorType>(PLURALS.ConnectorType),
          list<PolicyTemplate>(PLURALS.ConnectorPolicyTemplate),
        ]);
        return { types, templates };
      } catch (err) {
        throw cliError(err, where("reading the catalog"));
      }
    },
  };
}
