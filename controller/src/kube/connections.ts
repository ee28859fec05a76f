// client-node 2.0.1 builds a new undici Agent for every request
// (KubeConfig.applySecurityAuthentication → createDispatcher), so every API call, watch
// and patch opens and handshakes a new TLS connection, and each Agent with its TLS context
// lingers until its keep-alive timer and the GC let it go. Keeping one dispatcher per TLS
// identity lets undici pool and reuse connections as client-go does.
import type { KubeConfig } from "@kubernetes/client-node";

const TLS_FIELDS = ["ca", "cert", "key", "pfx", "passphrase", "rejectUnauthorized", "servername"] as const;
type TlsOptions = Partial<Record<(typeof TLS_FIELDS)[number], unknown>>;

/** createDispatcher is private in client-node's typings, a method all the same. */
interface DispatcherFactory {
  createDispatcher(cluster: { server?: string; proxyUrl?: string } | null, opts: TlsOptions): unknown;
}

/** client-node reads the CA and client certificate afresh for every request: compare bytes. */
function sameValue(a: unknown, b: unknown): boolean {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  return a === b;
}

function sameTls(a: TlsOptions, b: TlsOptions): boolean {
  return TLS_FIELDS.every((f) => sameValue(a[f], b[f]));
}

/**
 * Makes `kc` reuse one dispatcher (connection pool) per cluster and TLS identity. When the
 * identity changes (a rotated client certificate), the old pool is closed gracefully.
 */
export function reuseConnections(kc: KubeConfig): KubeConfig {
  const k = kc as unknown as DispatcherFactory;
  if (typeof k.createDispatcher !== "function") return kc; // a client-node without the per-request agent
  const create = k.createDispatcher.bind(kc);
  const pools = new Map<string, { tls: TlsOptions; dispatcher: unknown }>();
  k.createDispatcher = (cluster, opts) => {
    const server = `${cluster?.server ?? ""} ${cluster?.proxyUrl ?? ""}`;
    const cached = pools.get(server);
    if (cached && sameTls(cached.tls, opts)) return cached.dispatcher;
    const dispatcher = create(cluster, opts);
    pools.set(server, { tls: Object.fromEntries(TLS_FIELDS.map((f) => [f, opts[f]])), dispatcher });
    void (cached?.dispatcher as { close?: () => Promise<void> } | undefined)?.close?.().catch(() => {});
    return dispatcher;
  };
  return kc;
}
