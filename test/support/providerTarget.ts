// A loopback provider for tests of the gateway's API: every request it receives is kept (so a
// test can show that a refused call never reached it), answers are scripted per path prefix
// (status, headers, body, a delay; a function of the request and of how many came before),
// requests under a prefix can be held until released, and a prefix can require a bearer
// token (401 otherwise). Unscripted requests are answered 200 {"ok":true}.
import { createServer, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import { listen } from "./net.ts";

export interface Received {
  method: string;
  /** The path without the query. */
  path: string;
  query: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  /** A string is sent as it is; anything else as JSON. Default {"ok":true}. */
  body?: unknown;
  /** Answer only after this long (or never, when the caller goes away first). */
  delayMs?: number;
}

/** `n`: the how-manieth request under the script's prefix this is (1 for the first). */
export type Script = Reply | ((req: Received, n: number) => Reply);

export interface Hold {
  /** The first held request, once it arrived. */
  arrived: Promise<Received>;
  release(): void;
}

export interface ProviderTarget {
  /** http://127.0.0.1:<port> */
  url: string;
  /** Every request, in the order received. */
  received: Received[];
  /** Requests received under `prefix` (`prefix` itself or below it). */
  under(prefix: string): Received[];
  /** Answers requests under `prefix` as scripted (the longest matching prefix wins). */
  script(prefix: string, reply: Script): void;
  /** Requests under `prefix` wait until release() (or until their caller goes away). */
  hold(prefix: string): Hold;
  /** Requests under `prefix` need `Authorization: Bearer <token>` (else 401). */
  requireBearer(prefix: string, token: string): void;
  stop(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", () => resolve(""));
  });
}

const isUnder = (path: string, prefix: string) => path === prefix || path.startsWith(`${prefix}/`);

/** The entry of the longest prefix `path` is under. */
function longest<T>(entries: Map<string, T>, path: string): [string, T] | undefined {
  let best: [string, T] | undefined;
  for (const e of entries) if (isUnder(path, e[0]) && (!best || e[0].length > best[0].length)) best = e;
  return best;
}

export async function startProviderTarget(): Promise<ProviderTarget> {
  const scripts = new Map<string, Script>();
  const seen = new Map<string, number>();
  const bearers = new Map<string, string>();
  const holds: { prefix: string; arrived: (r: Received) => void; released: Promise<void> }[] = [];
  const target: ProviderTarget = {
    url: "",
    received: [],
    under: (prefix) => target.received.filter((r) => isUnder(r.path, prefix)),
    script: (prefix, reply) => {
      scripts.set(prefix, reply);
      seen.set(prefix, 0);
    },
    hold(prefix) {
      let arrived!: (r: Received) => void;
      let release!: () => void;
      const h = {
        prefix,
        arrived: (r: Received) => arrived(r),
        released: new Promise<void>((r) => (release = r)),
      };
      const first = new Promise<Received>((r) => (arrived = r));
      holds.push(h);
      return {
        arrived: first,
        release() {
          if (holds.includes(h)) holds.splice(holds.indexOf(h), 1);
          release();
        },
      };
    },
    requireBearer: (prefix, token) => void bearers.set(prefix, token),
    stop: async () => undefined,
  };
  const server = createServer(async (req, res) => {
    const [path = "/", query = ""] = (req.url ?? "/").split("?");
    const received: Received = {
      method: req.method ?? "GET",
      path,
      query,
      headers: req.headers,
      body: await readBody(req),
    };
    target.received.push(received);
    const gone = new Promise<void>((r) => res.on("close", () => r()));
    const bearer = longest(bearers, path);
    if (bearer && req.headers.authorization !== `Bearer ${bearer[1]}`) {
      res.writeHead(401, { "content-type": "application/json" }).end('{"error":"unauthorized"}\n');
      return;
    }
    const hold = holds.find((h) => isUnder(path, h.prefix));
    if (hold) {
      hold.arrived(received);
      await Promise.race([hold.released, gone]);
    }
    const found = longest(scripts, path);
    let reply: Reply = {};
    if (found) {
      const n = (seen.get(found[0]) ?? 0) + 1;
      seen.set(found[0], n);
      reply = typeof found[1] === "function" ? found[1](received, n) : found[1];
    }
    if (reply.delayMs) await Promise.race([new Promise((r) => setTimeout(r, reply.delayMs)), gone]);
    if (res.destroyed) return;
    const body = reply.body === undefined ? { ok: true } : reply.body;
    res.writeHead(reply.status ?? 200, { "content-type": "application/json", ...reply.headers });
    res.end(typeof body === "string" ? body : JSON.stringify(body));
  });
  const { port } = await listen(server);
  target.url = `http://127.0.0.1:${port}`;
  target.stop = () =>
    new Promise((resolve) => {
      for (const h of [...holds]) h.arrived = () => undefined;
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return target;
}
