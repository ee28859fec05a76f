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
