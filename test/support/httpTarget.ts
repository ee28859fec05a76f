// A plain HTTP server on a free loopback port that http-type Connectors in tests point at,
// so their health probes reach a real peer (and nothing leaves the machine).
import { createServer } from "node:http";
import { listen } from "./net.ts";

export interface HttpTarget {
  /** http://127.0.0.1:<port> */
  url: string;
  requests: number;
  /** Answer with this status from now on (200 by default). */
  status: number;
  stop(): Promise<void>;
}

/**
 * `delayMs`: answer only after that long, so a probe against it takes that long (a
 * reconcile is then reliably caught between its row write and its status write).
 */
export async function startHttpTarget(opts: { delayMs?: number } = {}): Promise<HttpTarget> {
  const target = { requests: 0, status: 200 } as HttpTarget;
  const server = createServer((req, res) => {
    target.requests++;
    req.resume();
    const answer = (): void => {
      res.writeHead(target.status, { "content-type": "application/json" });
      res.end('{"ok":true}\n');
    };
    if (!opts.delayMs) return answer();
    const timer = setTimeout(answer, opts.delayMs);
    res.on("close", () => clearTimeout(timer));
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
