// The benchmark's side of the Kubernetes API: the Connectors it creates, a watch that
// notes when each one turns Ready, and the API server's own request counters.
import * as https from "node:https";
import { CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import { GROUP, VERSION, type Connector } from "../../controller/src/api/types.ts";
import { reuseConnections } from "../../controller/src/kube/connections.ts";
import { Informer, objectKey } from "../../controller/src/kube/runtime/informer.ts";
import { customObjectSource, PLURALS } from "../../controller/src/kube/resources.ts";
import { createLogger } from "../../controller/src/observability/logger.ts";
import { applyCatalog, kubectlOk } from "../../test/support/cluster.ts";
import { httpConnector } from "../../test/support/connectors.ts";
import type { ControlPlane } from "../../test/support/controlPlane.ts";
import { inParallel, retrying } from "./util.ts";

export const NAMESPACES = 20;
/** Long enough that no probe repeats during a run: the cold start probes each Connector once. */
export const HEALTH_INTERVAL_SECONDS = 86_400;

export function namespaceOf(i: number): string {
  return `bench-${String(i % NAMESPACES).padStart(2, "0")}`;
}

export function benchConnector(i: number, targetUrl: string, prefix = "c"): Connector {
  const c = httpConnector(namespaceOf(i), `${prefix}-${String(i).padStart(5, "0")}`, targetUrl);
  c.spec.healthCheck = { intervalSeconds: HEALTH_INTERVAL_SECONDS, timeoutSeconds: 5 };
  return c;
}

/**
 * The bench's client, reusing connections as the controller does (kube/connections.ts);
 * `reuse = false` is stock client-node 2.0.1, which opens a TLS connection per request.
 */
export function kubeConfig(cp: ControlPlane, reuse = true): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfigPath);
  return reuse ? reuseConnections(kc) : kc;
}

/** Namespaces, the example ConnectorTypes and policy templates. */
export async function prepareCluster(cp: ControlPlane): Promise<void> {
  const namespaces = Array.from({ length: NAMESPACES }, (_, i) => ({
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name: namespaceOf(i) },
  }));
  await kubectlOk(
    cp,
    ["apply", "-f", "-"],
    JSON.stringify({ apiVersion: "v1", kind: "List", items: namespaces }),
  );
  await applyCatalog(cp);
}

export async function createConnector(api: CustomObjectsApi, c: Connector): Promise<Connector> {
  return (await api.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    plural: PLURALS.Connector,
    namespace: c.metadata.namespace!,
    body: c,
  })) as Connector;
}

export async function createConnectors(
  kc: KubeConfig,
  connectors: Connector[],
  concurrency: number,
): Promise<void> {
  const api = kc.makeApiClient(CustomObjectsApi);
  await inParallel(connectors, concurrency, (c) =>
    retrying(() => createConnector(api, c), `create ${objectKey(c)}`).then(() => undefined),
  );
}

export function isReady(c: Connector): boolean {
  const ready = c.status?.conditions?.find((x) => x.type === "Ready");
  return ready?.status === "True" && c.status?.observedGeneration === c.metadata.generation;
}

/**
 * A list+watch of every Connector (the controller's own Informer class), noting when each
 * key is first seen Ready (Ready=True for the current generation).
 */
export class ReadyTracker {
  readonly informer: Informer<Connector>;
  readonly readyAt = new Map<string, number>();
  readonly #waiters = new Map<string, (at: number) => void>();
  readonly #abort = new AbortController();
  #run: Promise<void> | undefined;
  #countWaiters: { n: number; resolve: (at: number) => void }[] = [];

  constructor(kc: KubeConfig) {
    const log = createLogger({ level: "warn", destination: process.stderr });
    this.informer = new Informer(kc, customObjectSource<Connector>(kc, PLURALS.Connector), {
      name: "bench",
      log,
      stallMs: 600_000,
    });
    this.informer.on((type, obj) => {
      const key = objectKey(obj);
      if (type === "delete") {
        this.readyAt.delete(key);
        return;
      }
      if (this.readyAt.has(key) || !isReady(obj)) return;
      const at = performance.now();
      this.readyAt.set(key, at);
      this.#waiters.get(key)?.(at);
      this.#waiters.delete(key);
      if (this.#countWaiters.length) {
        const n = this.readyAt.size;
        this.#countWaiters = this.#countWaiters.filter((w) => (n >= w.n ? (w.resolve(at), false) : true));
      }
    });
  }

  async start(): Promise<void> {
    this.#run = this.informer.run(this.#abort.signal);
    await this.informer.waitForSync();
  }

  /** Forget what was seen Ready (before a new cold start on the same objects). */
  reset(): void {
    this.readyAt.clear();
  }

  /** Resolves with the performance.now() at which `n` keys were Ready. */
  whenCount(n: number): Promise<number> {
    if (this.readyAt.size >= n) return Promise.resolve(Math.max(...this.readyAt.values()));
    return new Promise((resolve) => this.#countWaiters.push({ n, resolve }));
  }

  /** Resolves with the performance.now() at which `key` was first seen Ready. */
  whenReady(key: string): Promise<number> {
    const at = this.readyAt.get(key);
    if (at !== undefined) return Promise.resolve(at);
    return new Promise((resolve) => this.#waiters.set(key, resolve));
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#run;
  }
}

// ---- the API server's counters ------------------------------------------------------------

function httpsGet(url: string, cp: ControlPlane): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      { method: "GET", agent: false, ca: cp.caPem, cert: cp.clientCertPem, key: cp.clientKeyPem },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () =>
          res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: ${res.statusCode}`)),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.setTimeout(30_000, () => req.destroy(new Error("timeout")));
    req.end();
  });
}

export function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) out[m[1]!] = m[2]!;
  return out;
}

/** Core resources the controller touches, counted next to our own kinds. */
const COUNTED = new Set(["events", "serviceaccounts", "tokenreviews", "secrets", "leases", "namespaces"]);

/**
 * apiserver_request_total for our resources and the core ones above, keyed "connectors/status PATCH",
 * "connectors PATCH", "events POST" … (summed over response codes), plus "all".
 */
export async function apiserverRequests(cp: ControlPlane): Promise<Record<string, number>> {
  const text = await httpsGet(`${cp.server}/metrics`, cp);
  const out: Record<string, number> = { all: 0 };
  for (const line of text.split("\n")) {
    if (!line.startsWith("apiserver_request_total{")) continue;
    const close = line.lastIndexOf("}");
    const l = parseLabels(line.slice(line.indexOf("{") + 1, close));
    const value = Number(line.slice(close + 1).trim());
    out.all! += value;
    if (l.group !== GROUP && !COUNTED.has(l.resource ?? "")) continue;
    const key = `${l.resource}${l.subresource ? `/${l.subresource}` : ""} ${l.verb}`;
    out[key] = (out[key] ?? 0) + value;
  }
  return out;
}

export function requestDelta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b)) {
    const d = v - (a[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

export const STATUS_PATCH = "connectors/status PATCH";
export const CONNECTOR_PATCH = "connectors PATCH";
