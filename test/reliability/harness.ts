// What every reliability scenario shares: the suite's fake secrets, a Kubernetes client
// that keeps retrying the way a user or Argo CD would while the API server is away, and the
// "world" (what each Connector the suite made should end up as). The servers, and the
// controller as a separate process, come from test/support (world.ts, controllerProcess.ts).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ApiException, CoreV1Api, CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import * as yaml from "js-yaml";
import { projectRoot } from "../../controller/src/api/paths.ts";
import { GROUP, VERSION, type Connector } from "../../controller/src/api/types.ts";
import { httpConnector as exampleHttpConnector } from "../support/connectors.ts";
import { sleep } from "../support/wait.ts";

/** RELIABILITY_FULL=1: the long version (bigger batches, more rounds, more generated inputs). */
export const FULL = process.env.RELIABILITY_FULL === "1";
export const size = (reduced: number, full: number): number => (FULL ? full : reduced);
/** Per-scenario time limit: a scenario waits up to two minutes for its invariants. */
export const SCENARIO_TIMEOUT = (FULL ? 40 : 10) * 60_000;

// ---------------------------------------------------------------------------------------
// The suite's own secret values. They are put where a secret could leak from (config
// fields that must be refused, a URL's userinfo, generated bad input) and must never show
// up in logs, Events, status, audit rows or error messages.
// ---------------------------------------------------------------------------------------
export const SECRETS = [
  "relsecret-BEARER-7f3a9c1e5d2b48a6-token",
  "relsecret-COOKIE-0d9f7c2a6b1e4f58-session",
  "relsecret-PASSWORD-c4fe8e21b7d94a03-hunter2",
  // Real credentials, in Vault and in a file provider: only the probe's target may see them.
  "relsecret-TENANTA-91b2c3d4e5f60718-vault",
  "relsecret-TENANTB-a0b1c2d3e4f5a6b7-vault",
  "relsecret-ROTATED-5e6f7a8b9c0d1e2f-vault",
  "relsecret-FILEA-3c4d5e6f70819203-file",
  // In Kubernetes Secrets of two tenants' namespaces (the kubernetes provider).
  "relsecret-KUBEA-6a7b8c9d0e1f2a3b-k8s",
  "relsecret-KUBEB-b3a2f1e0d9c8b7a6-k8s",
] as const;
export const [
  BEARER_SECRET,
  COOKIE_SECRET,
  PASSWORD_SECRET,
  TENANT_A_SECRET,
  TENANT_B_SECRET,
  ROTATED_SECRET,
  FILE_A_SECRET,
  KUBE_A_SECRET,
  KUBE_B_SECRET,
] = SECRETS;

// ---------------------------------------------------------------------------------------
// Connectors
// ---------------------------------------------------------------------------------------
export function loadYaml<T>(rel: string): T {
  return yaml.load(readFileSync(join(projectRoot, rel), "utf8")) as T;
}

export type Kind = "ready" | "disabled" | "bearer-header" | "cookie-header" | "orphan";

/**
 * An http Connector (the standalone status-webhook example) pointed at `baseUrl`. Kinds:
 * ready (probes the target), disabled, bearer-header / cookie-header (a credential in
 * `headers`, which http v2 refuses: Stalled, and the value must never leak), orphan
 * (deletion-policy Orphan: the row outlives the Connector).
 */
export function httpConnector(ns: string, name: string, baseUrl: string, kind: Kind = "ready"): Connector {
  const c = exampleHttpConnector(ns, name, baseUrl);
  c.metadata.labels = { "cynodeai.io/suite": "reliability" };
  c.spec.config = { ...c.spec.config, healthPath: "/healthz" };
  if (kind === "disabled") c.spec.enabled = false;
  if (kind === "bearer-header")
    c.spec.config = {
      ...c.spec.config,
      headers: { "X-Source": "reliability", Authorization: `Bearer ${BEARER_SECRET}` },
    };
  if (kind === "cookie-header")
    c.spec.config = { ...c.spec.config, headers: { Cookie: `session=${COOKIE_SECRET}` } };
  if (kind === "orphan") c.spec.deletionPolicy = "Orphan";
  return c;
}

/** A mix of kinds for a batch: mostly working connectors, some disabled, some refused. */
export function kindFor(i: number): Kind {
  const cycle: Kind[] = [
    "ready",
    "ready",
    "disabled",
    "ready",
    "bearer-header",
    "ready",
    "orphan",
    "cookie-header",
  ];
  return cycle[i % cycle.length]!;
}

// ---------------------------------------------------------------------------------------
// The world: what each Connector should converge to
// ---------------------------------------------------------------------------------------
export type Want =
  /** Ready=True (Available, or Disabled when disabled). */
  | "ready"
  /** Applied: not Stalled, a live row at its generation, whatever health and credentials say. */
  | "applied"
  /** Applied, but failing for a reason that is not the spec's (Synced=False with `reason`, not Stalled). */
  | "failing"
  /** Stalled=True with `reason`. */
  | "stalled"
  /** Deleted: gone from the API, row soft-deleted (or kept live when `orphan`). */
  | "deleted";

export interface Expectation {
  ns: string;
  name: string;
  uid: string;
  want: Want;
  reason?: string;
  enabled?: boolean;
  orphan?: boolean;
  /** For stalled: the generation still in force in the database (undefined: no row ever). */
  appliedGeneration?: number;
  /** For deleted: a row must exist (it was applied before the deletion). */
  hadRow?: boolean;
}

function expectationFor(c: Connector, kind: Kind): Omit<Expectation, "uid"> {
  const base = { ns: c.metadata.namespace!, name: c.metadata.name };
  switch (kind) {
    case "bearer-header":
    case "cookie-header":
      return { ...base, want: "stalled", reason: "InvalidConfig" };
    case "disabled":
      return { ...base, want: "ready", enabled: false };
    case "orphan":
      return { ...base, want: "ready", enabled: true, orphan: true };
    default:
      return { ...base, want: "ready", enabled: true };
  }
}

export class World {
  readonly namespaces = new Set<string>();
  readonly byUid = new Map<string, Expectation>();
  /** Refusal and error messages the scenarios met (scanned for secrets too). */
  readonly messages: string[] = [];

  expect(e: Expectation): void {
    this.namespaces.add(e.ns);
    this.byUid.set(e.uid, e);
  }

  expectKind(c: Connector, kind: Kind): void {
    this.expect({ ...expectationFor(c, kind), uid: c.metadata.uid! });
  }

  get(uid: string): Expectation | undefined {
    return this.byUid.get(uid);
  }

  /**
   * The Connector was deleted. `hadRow`: it had been applied before (the test saw it
   * converge), so a row must exist, soft-deleted (or live, for Orphan).
   */
  deleted(uid: string, hadRow: boolean): void {
    const e = this.byUid.get(uid);
    if (!e) throw new Error(`unknown uid ${uid}`);
    this.byUid.set(uid, { ...e, want: "deleted", hadRow });
  }

  live(): Expectation[] {
    return [...this.byUid.values()].filter((e) => e.want !== "deleted");
  }
}

// ---------------------------------------------------------------------------------------
// A Kubernetes client for the test itself, retrying through API server outages
// ---------------------------------------------------------------------------------------
function code(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

/** Network-level failures (the API server is restarting) and 5xx: worth retrying. */
function retryable(err: unknown): boolean {
  const c = code(err);
  if (c === undefined) return true;
  return c >= 500 || c === 429;
}

export function apiMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const body = (typeof err.body === "string" ? safeParse(err.body) : err.body) as
      { message?: string } | undefined;
    return `${err.code} ${body?.message ?? String(err.body)}`;
  }
  return (err as Error)?.message ?? String(err);
}

function safeParse(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return { message: s };
  }
}

export class Kube {
  readonly kc: KubeConfig;
  readonly custom: CustomObjectsApi;
  readonly core: CoreV1Api;
  /** API calls that had to be retried (the API server was away). */
  retries = 0;

  constructor(kubeconfigPath: string) {
    this.kc = new KubeConfig();
    this.kc.loadFromFile(kubeconfigPath);
    this.custom = this.kc.makeApiClient(CustomObjectsApi);
    this.core = this.kc.makeApiClient(CoreV1Api);
  }

  async #retrying<T>(what: string, fn: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!retryable(err) || Date.now() > deadline)
          throw new Error(`${what}: ${apiMessage(err)}`, { cause: err });
        this.retries++;
        await sleep(Math.min(200 * 2 ** attempt, 2000));
      }
    }
  }

  async ensureNamespace(ns: string): Promise<void> {
    await this.#retrying(`create namespace ${ns}`, async () => {
      try {
        await this.core.createNamespace({ body: { metadata: { name: ns } } });
      } catch (err) {
        if (code(err) !== 409) throw err;
      }
    });
  }

  /**
   * Creates a Connector; when a create whose answer was lost already went through
   * (409 after a retry), the stored object is returned. Other refusals throw.
   */
  async create(c: Connector): Promise<Connector> {
    let tried = false;
    return this.#retrying(`create ${c.metadata.namespace}/${c.metadata.name}`, async () => {
      try {
        const out = (await this.custom.createNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          plural: "connectors",
          namespace: c.metadata.namespace!,
          body: c,
          fieldValidation: "Strict",
        })) as Connector;
        return out;
      } catch (err) {
        if (code(err) === 409 && tried)
          return this.get(c.metadata.namespace!, c.metadata.name) as Promise<Connector>;
        tried = true;
        throw err;
      }
    });
  }

  /** One create attempt, no retries: the API server's own verdict. */
  async tryCreate(
    c: Connector,
  ): Promise<{ ok: true; obj: Connector } | { ok: false; code?: number; message: string }> {
    try {
      const obj = (await this.custom.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: "connectors",
        namespace: c.metadata?.namespace ?? "default",
        body: c,
        fieldValidation: "Strict",
      })) as Connector;
      return { ok: true, obj };
    } catch (err) {
      return {
        ok: false,
        ...(code(err) !== undefined ? { code: code(err)! } : {}),
        message: apiMessage(err),
      };
    }
  }

  async get(ns: string, name: string): Promise<Connector | undefined> {
    return this.#retrying(`get ${ns}/${name}`, async () => {
      try {
        return (await this.custom.getNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          plural: "connectors",
          namespace: ns,
          name,
        })) as Connector;
      } catch (err) {
        if (code(err) === 404) return undefined;
        throw err;
      }
    });
  }

  /** Changes the spec (read-modify-write, retried on conflicts); returns the new object. */
  async update(ns: string, name: string, change: (c: Connector) => void): Promise<Connector> {
    for (;;) {
      const cur = await this.get(ns, name);
      if (!cur) throw new Error(`update ${ns}/${name}: not found`);
      change(cur);
      try {
        return await this.#retrying(
          `update ${ns}/${name}`,
          async () =>
            (await this.custom.replaceNamespacedCustomObject({
              group: GROUP,
              version: VERSION,
              plural: "connectors",
              namespace: ns,
              name,
              body: cur,
            })) as Connector,
        );
      } catch (err) {
        if (code((err as Error).cause) !== 409) throw err;
      }
    }
  }

  async delete(ns: string, name: string): Promise<void> {
    await this.#retrying(`delete ${ns}/${name}`, async () => {
      try {
        await this.custom.deleteNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          plural: "connectors",
          namespace: ns,
          name,
        });
      } catch (err) {
        if (code(err) !== 404) throw err;
      }
    });
  }

  async listConnectors(): Promise<Connector[]> {
    return this.#retrying("list connectors", async () => {
      const out = (await this.custom.listClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: "connectors",
      })) as { items: Connector[] };
      return out.items;
    });
  }

  /** Every Event in the cluster, as JSON text (for the secret scan) and parsed. */
  async events(): Promise<{ text: string; count: number }> {
    return this.#retrying("list events", async () => {
      const list = await this.core.listEventForAllNamespaces();
      return { text: JSON.stringify(list.items), count: list.items.length };
    });
  }
}

/** Creates `docs` with at most `parallel` requests in flight; returns the stored objects in order. */
export async function createAll(
  kube: Kube,
  docs: Connector[],
  parallel = 4,
  onEach?: (i: number) => Promise<void> | void,
): Promise<Connector[]> {
  const out: Connector[] = new Array(docs.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= docs.length) return;
      out[i] = await kube.create(docs[i]!);
      await onEach?.(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, docs.length) }, worker));
  return out;
}

/**
 * Compacts etcd's history up to its current revision (physically), through etcd's
 * gRPC-gateway: every watch that resumes from an older resourceVersion gets 410 Gone.
 * Returns the revision compacted to.
 */
export async function compactEtcd(etcdUrl: string): Promise<number> {
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${etcdUrl}${path}`, { method: "POST", body: JSON.stringify(body) });
    const json = (await res.json()) as { header?: { revision?: string }; error?: string; message?: string };
    if (!res.ok) throw new Error(`etcd ${path}: ${res.status} ${json.message ?? json.error ?? ""}`);
    return json;
  };
  const range = await post("/v3/kv/range", { key: Buffer.from("/").toString("base64"), limit: 1 });
  const revision = range.header?.revision;
  if (!revision) throw new Error("etcd did not say its revision");
  await post("/v3/kv/compaction", { revision, physical: true });
  return Number(revision);
}

/** Writes `n` ConfigMaps: moves etcd's revision on without touching any Connector. */
export async function churn(kube: Kube, ns: string, n: number): Promise<void> {
  await kube.ensureNamespace(ns);
  const stamp = Date.now().toString(36);
  for (let i = 0; i < n; i++)
    await kube.core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: `churn-${stamp}-${i}` }, data: { i: String(i) } },
    });
}
