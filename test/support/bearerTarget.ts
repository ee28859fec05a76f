// A plain HTTP server on loopback for Connectors whose probes carry a credential: it answers
// 200 only when `Authorization: Bearer <token>` names one of the accepted tokens (401
// otherwise), and records, per request path, which bearer tokens it was shown. It also
// counts TCP connections, so a test can show that a refused probe never connected.
//
// Discord-shaped answers are available too (GET <prefix>/users/@me returns a user), so the
// OAuth tests can check which authorization scheme a probe used.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { countConnections, listen } from "./net.ts";

export interface BearerTarget {
  /** http://<host>:<port> */
  url: string;
  host: string;
  port: number;
  /** Tokens answered with 200. Tests add (and remove) tokens as they write secrets. */
  accepted: Set<string>;
  /** Every request: its path and the bearer token it carried (undefined without one). */
  requests: { path: string; scheme: string | undefined; token: string | undefined }[];
  /** Bearer tokens seen on requests to this path, in order. */
  tokensAt(path: string): string[];
  /** TCP connections accepted so far. */
  connections(): number;
  stop(): Promise<void>;
}

export async function startBearerTarget(opts: { host?: string } = {}): Promise<BearerTarget> {
  const host = opts.host ?? "127.0.0.1";
  const accepted = new Set<string>();
  const requests: BearerTarget["requests"] = [];

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    req.resume();
    const path = new URL(req.url ?? "/", "http://placeholder").pathname;
    const m = /^(\S+)\s+(\S+)$/.exec(req.headers.authorization ?? "");
    const scheme = m?.[1];
    const token = m?.[2];
    requests.push({ path, scheme, token });
    const ok = scheme === "Bearer" && token !== undefined && accepted.has(token);
    const body = ok
      ? path.endsWith("/users/@me")
        ? { id: "112233445566778899", username: "oauth-user", discriminator: "0" }
        : { ok: true }
      : { message: "401: Unauthorized", code: 0 };
    const text = JSON.stringify(body);
    res.writeHead(ok ? 200 : 401, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(text),
    });
    res.end(text);
  };

  const server = createServer(handler);
  const counted = countConnections(server);
  const { port } = await listen(server, 0, host);
  return {
    url: `http://${host}:${port}`,
    host,
    port,
    accepted,
    requests,
    tokensAt: (p) => requests.filter((r) => r.path === p && r.token !== undefined).map((r) => r.token!),
    connections: counted.connections,
    stop: () =>
      new Promise((resolve) => {
        for (const s of counted.sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
