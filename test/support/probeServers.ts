// In-process servers on loopback for the probe tests:
// - startTestHttpsServer: a real TLS server (node:https, certificate from a throwaway CA)
//   that checks the token and answers the health, Mattermost (/api/v4/users/me) and
//   Discord (/api/v10/users/@me) shapes; it counts TCP connections and open sockets.
// - startSilentServer: accepts TCP connections and never says a word (timeouts), counting
//   connections and open sockets too.
import * as https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:net";
import { countConnections, listen, type ConnectionCounter } from "./net.ts";
import { createTestCa } from "./pki.ts";

export interface TestHttpsServer extends ConnectionCounter {
  port: number;
  /** https://127.0.0.1:<port> */
  url: string;
  caPem: string;
  token: string;
  basicUser: string;
  apiKeyHeader: string;
  /** Mattermost user id / Discord user id returned for the right token. */
  mattermostUserId: string;
  discordUserId: string;
  /** Request paths seen (method and path), in order. */
  requests: string[];
  stop(): Promise<void>;
}

function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

export async function startTestHttpsServer(opts: { token?: string } = {}): Promise<TestHttpsServer> {
  const ca = await createTestCa("connector-controller-https-test-ca");
  const cert = await ca.issueServerCert({ dns: ["localhost"], ips: ["127.0.0.1"] });
  const token = opts.token ?? "tok-correct-horse-battery-staple";
  const basicUser = "probe";
  const apiKeyHeader = "x-api-key";
  const mattermostUserId = "u1x9k3m2p8q7w4e5r6t7y8u9i0";
  const discordUserId = "112233445566778899";
  const requests: string[] = [];

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "https://localhost");
    requests.push(`${req.method ?? "?"} ${url.pathname}`);
    const auth = req.headers.authorization ?? "";
    const path = url.pathname;
    if (path === "/health" || path === "/prefix/health") {
      if (auth !== `Bearer ${token}`) return json(res, 401, { error: "unauthorized" });
      return json(res, 200, { status: "ok" });
    }
    if (path === "/basic/health") {
      const expected = `Basic ${Buffer.from(`${basicUser}:${token}`).toString("base64")}`;
      if (auth !== expected)
        return json(res, 401, { error: "unauthorized" }, { "www-authenticate": 'Basic realm="t"' });
      return json(res, 200, { status: "ok" });
    }
    if (path === "/header/health") {
      if (req.headers[apiKeyHeader] !== token) return json(res, 403, { error: "forbidden" });
      return json(res, 200, { status: "ok" });
    }
    if (path === "/open/health") return json(res, 200, { status: "ok" });
    if (path === "/api/v4/users/me") {
      if (auth !== `Bearer ${token}`)
        return json(res, 401, {
          id: "api.context.session_expired.app_error",
          message: "Invalid or expired session, please login again.",
          detailed_error: "",
          request_id: "r".repeat(26),
          status_code: 401,
        });
      return json(res, 200, {
        id: mattermostUserId,
        username: "probe-bot",
        is_bot: true,
        roles: "system_user",
      });
    }
    if (path === "/api/v10/users/@me") {
      if (auth !== `Bot ${token}` && auth !== `Bearer ${token}`)
        return json(res, 401, { message: "401: Unauthorized", code: 0 });
      return json(res, 200, { id: discordUserId, username: "probe-bot", bot: true, discriminator: "0" });
    }
    if (path === "/not-a-user/api/v4/users/me") return json(res, 200, { status: "ok" });
    const status = /^\/status\/(\d{3})$/.exec(path);
    if (status) {
      const code = Number(status[1]);
      return json(
        res,
        code,
        { status: code },
        code === 429 ? { "retry-after": "7" } : code === 302 ? { location: "https://example.com/" } : {},
      );
    }
    if (path === "/hang") return; // never answers
    return json(res, 404, { error: "not found" });
  };

  const server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, handler);
  const c = countConnections(server);
  const { port } = await listen(server);
  return {
    port,
    url: `https://127.0.0.1:${port}`,
    caPem: ca.caPem,
    token,
    basicUser,
    apiKeyHeader,
    mattermostUserId,
    discordUserId,
    requests,
    connections: c.connections,
    openSockets: c.openSockets,
    waitForNoOpenSockets: c.waitForNoOpenSockets,
    resetCounts: () => {
      c.resetCounts();
      requests.length = 0;
    },
    async stop() {
      server.closeAllConnections();
      for (const s of c.sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface SilentServer extends ConnectionCounter {
  port: number;
  stop(): Promise<void>;
}

/** Accepts TCP connections on 127.0.0.1 and never writes a byte. */
export async function startSilentServer(): Promise<SilentServer> {
  // Reads (and drops) what the client sends, so the client's FIN is seen and counted.
  const server = createServer((s) => s.resume());
  const c = countConnections(server);
  const { port } = await listen(server);
  return {
    port,
    connections: c.connections,
    openSockets: c.openSockets,
    waitForNoOpenSockets: c.waitForNoOpenSockets,
    resetCounts: c.resetCounts,
    async stop() {
      for (const s of c.sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
