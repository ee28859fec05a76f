// client-node 2.0.1 builds a new undici Agent for every request
// (KubeConfig.applySecurityAuthentication → createDispatcher), so every API call, watch
// and patch opens and handshakes a new TLS connection, and each Agent with its TLS context
// lingers until its keep-alive timer and the GC let it go. Keeping one dispatcher per TLS
// identity lets undici pool and reuse connections as client-go does.
import { createHash } from "node:crypto";
import type { KubeConfig } from "@kubernetes/client-node";

interface TlsOptions {
  ca?: unknown;
  cert?: unknown;
  key?: unknown;
  pfx?: unknown;
  passphrase?: unknown;
  rejectUnauthorized?: unknown;
  servername?: unknown;
}

/** createDispatcher is private in client-node's typings, a method all the same. */
interface DispatcherFactory {
  createDispatcher(cluster: { server?: string; proxyUrl?: string } | null, opts: TlsOptions): unknown;
}

/**
 * Makes `kc` reuse one dispatcher (connection pool) per cluster and TLS identity. When the
 * identity changes (a rotated client certificate), the old pool is closed gracefully.
 */
export function reuseConnections(kc: KubeConfig): KubeConfig {
  const k = kc as unknown as DispatcherFactory;
  if (typeof k.createDispatcher !== "function") return kc; // a client-node without the per-request agent
  const create = k.createDispatcher.bind(kc);
  const pools = new Map<string, { id: string; dispatcher: unknown }>();
  k.createDispatcher = (cluster, opts) => {
    const server = `${cluster?.server ?? ""} ${cluster?.proxyUrl ?? ""}`;
    const id = createHash("sha256")
      .update(
        [opts.ca, opts.cert, opts.key, opts.pfx, opts.passphrase, opts.rejectUnauthorized, opts.servername]
          .map((v) => String(v ?? ""))
          .join("\0"),
      )
      .digest("hex");
    const cached = pools.get(server);
    if (cached?.id === id) return cached.dispatcher;
    const dispatcher = create(cluster, opts);
    pools.set(server, { id, dispatcher });
    void (cached?.dispatcher as { close?: () => Promise<void> } | undefined)?.close?.().catch(() => {});
    return dispatcher;
  };
  return kc;
}
