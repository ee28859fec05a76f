// Loopback ports for tests. Nothing here binds a fixed port: a listener takes a free one
// (port 0), and one that cannot bind rejects at once with the address and the reason, so a
// test fails at the start instead of hanging on an unhandled EADDRINUSE.
import * as net from "node:net";
import { eventually } from "./wait.ts";

export const LOOPBACK = "127.0.0.1";

/**
 * Listens on host:port (default a free loopback port) and resolves with the bound address;
 * rejects at once, naming the address, when it cannot bind.
 */
export function listen(server: net.Server, port = 0, host = LOOPBACK): Promise<net.AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(new Error(`cannot listen on ${host}:${port}: ${err.message}`, { cause: err }));
    };
    server.once("error", onError);
    server.listen(port, host, () => {
      server.removeListener("error", onError);
      resolve(server.address() as net.AddressInfo);
    });
  });
}

/**
 * Distinct free loopback ports for a program that must be told its port (etcd, PostgreSQL,
 * Dovecot): bound together, so they differ, then released for it to bind.
 */
export async function freePorts(n: number, host = LOOPBACK): Promise<number[]> {
  const servers = Array.from({ length: n }, () => net.createServer());
  try {
    const addresses = [];
    for (const s of servers) addresses.push(await listen(s, 0, host));
    return addresses.map((a) => a.port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

export async function freePort(host = LOOPBACK): Promise<number> {
  return (await freePorts(1, host))[0]!;
}

export interface ConnectionCounter {
  /** TCP connections accepted so far. */
  connections(): number;
  /** Sockets still open on the server side. */
  openSockets(): number;
  /** Resolves when no socket is open (or rejects after timeoutMs). */
  waitForNoOpenSockets(timeoutMs?: number): Promise<void>;
  resetCounts(): void;
}

/** Counts a server's TCP connections and keeps its open sockets (for a stop that ends them). */
export function countConnections(server: net.Server): ConnectionCounter & { sockets: Set<net.Socket> } {
  let count = 0;
  const sockets = new Set<net.Socket>();
  server.on("connection", (s: net.Socket) => {
    count++;
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  return {
    sockets,
    connections: () => count,
    openSockets: () => sockets.size,
    resetCounts: () => {
      count = 0;
    },
    async waitForNoOpenSockets(timeoutMs = 2000) {
      await eventually(
        () => {
          if (sockets.size > 0) throw new Error(`${sockets.size} socket(s) still open`);
          return true;
        },
        "the test server's sockets to close",
        { timeoutMs, intervalMs: 10 },
      );
    },
  };
}

/** Whether something accepts TCP connections at host:port. */
export function accepts(port: number, host = LOOPBACK): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
    s.setTimeout(1000, () => done(false));
  });
}

/** Resolves once nothing accepts connections at `url`'s host and port. */
export async function untilRefused(url: string, timeoutMs = 30_000): Promise<void> {
  const { hostname, port } = new URL(url);
  await eventually(async () => !(await accepts(Number(port), hostname)), `${url} to go down`, {
    timeoutMs,
    intervalMs: 25,
  });
}
