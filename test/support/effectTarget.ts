// A loopback provider for gateway tests that counts side effects the way a provider honouring
// Idempotency-Key does: every POST, PUT, PATCH or DELETE is a delivery; the first delivery of
// a key applies its effect, later ones with the same key are answered without applying it
// again. "Exactly once" is then read here, at the target: effects.get(key) === 1. Paths can
// be held (a request waits until released, or until its caller goes away) or slowed down,
// and a path prefix can require a bearer token.
import { createServer, type IncomingMessage } from "node:http";
import { listen } from "./net.ts";

export interface Delivery {
  method: string;
  path: string;
  key: string | undefined;
  body: string;
}

export interface Hold {
  /** The first held request, once it arrived. */
  arrived: Promise<Delivery>;
  release(): void;
}

export interface EffectTarget {
  /** http://127.0.0.1:<port> */
  url: string;
  requests: number;
  deliveries: Delivery[];
  /** Effects applied per Idempotency-Key (1 for each key a provider saw, however often). */
  effects: Map<string, number>;
  /** Deliveries without a key: each one an effect. */
  unkeyedEffects: number;
  /** Requests under `prefix` wait until release() (or until the caller closes the connection). */
  hold(prefix: string): Hold;
  /** Requests under `prefix` are answered after `ms`. */
  slow(prefix: string, ms: number): void;
  /** Requests under `prefix` need `Authorization: Bearer <token>` (else 401). */
  requireBearer(prefix: string, token: string): void;
  stop(): Promise<void>;
}

const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", () => resolve(""));
  });
}

export async function startEffectTarget(): Promise<EffectTarget> {
  const holds: { prefix: string; arrived: (d: Delivery) => void; released: Promise<void> }[] = [];
  const slows = new Map<string, number>();
  const bearers = new Map<string, string>();
  const under = (path: string, prefix: string) => path === prefix || path.startsWith(`${prefix}/`);
  const target: EffectTarget = {
    url: "",
    requests: 0,
    deliveries: [],
    effects: new Map(),
    unkeyedEffects: 0,
    hold(prefix) {
      let arrived!: (d: Delivery) => void;
      let release!: () => void;
      const h = {
        prefix,
        arrived: (d: Delivery) => arrived(d),
        released: new Promise<void>((r) => (release = r)),
      };
      const first = new Promise<Delivery>((r) => (arrived = r));
      holds.push(h);
      return {
        arrived: first,
        release() {
          holds.splice(holds.indexOf(h), 1);
          release();
        },
      };
    },
    slow: (prefix, ms) => void slows.set(prefix, ms),
    requireBearer: (prefix, token) => void bearers.set(prefix, token),
    stop: async () => undefined,
  };
  const server = createServer(async (req, res) => {
    target.requests++;
    const path = (req.url ?? "/").split("?")[0]!;
    const method = req.method ?? "GET";
    const body = await readBody(req);
    for (const [prefix, token] of bearers)
      if (under(path, prefix) && req.headers.authorization !== `Bearer ${token}`) {
        res.writeHead(401, { "content-type": "application/json" }).end('{"error":"unauthorized"}\n');
        return;
      }
    let applied = false;
    if (MUTATING.has(method)) {
      const key = req.headers["idempotency-key"] as string | undefined;
      const d: Delivery = { method, path, key, body };
      target.deliveries.push(d);
      if (key === undefined) {
        target.unkeyedEffects++;
        applied = true;
      } else if (!target.effects.has(key)) {
        target.effects.set(key, 1);
        applied = true;
      }
      const hold = holds.find((h) => under(path, h.prefix));
      if (hold) {
        hold.arrived(d);
        const gone = new Promise<void>((r) => res.on("close", () => r()));
        await Promise.race([hold.released, gone]);
      }
    }
    const delay = [...slows].find(([prefix]) => under(path, prefix))?.[1];
    if (delay) {
      const gone = new Promise<void>((r) => res.on("close", () => r()));
      await Promise.race([new Promise((r) => setTimeout(r, delay)), gone]);
    }
    if (res.destroyed) return;
    res.writeHead(MUTATING.has(method) ? (applied ? 201 : 200) : 200, { "content-type": "application/json" });
    res.end(JSON.stringify(MUTATING.has(method) ? { applied } : { ok: true }) + "\n");
  });
  const { port } = await listen(server);
  target.url = `http://127.0.0.1:${port}`;
  target.stop = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return target;
}
