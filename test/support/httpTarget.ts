// A plain HTTP server on loopback that http-type Connectors in tests point at, so their
// health probes reach a real peer (and nothing leaves the machine).
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface HttpTarget {
  /** http://127.0.0.1:<port> */
  url: string;
  requests: number;
  /** Answer with this status from now on (200 by default). */
  status: number;
  stop(): Promise<void>;
}

export async function startHttpTarget(port = 0): Promise<HttpTarget> {
  const target = { requests: 0, status: 200 } as HttpTarget;
  const server = createServer((req, res) => {
    target.requests++;
    req.resume();
    res.writeHead(target.status, { "content-type": "application/json" });
    res.end('{"ok":true}\n');
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  target.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  target.stop = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return target;
}
