// The controller's API client keeps its TLS connections: one handshake for many calls, as
// client-go does, instead of stock client-node's new connection per request.
import * as https from "node:https";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { reuseConnections } from "../../controller/src/kube/connections.ts";
import { listen } from "../support/net.ts";
import { createTestCa } from "../support/pki.ts";

let server: https.Server;
let handshakes = 0;
let caPem = "";
let url = "";

beforeAll(async () => {
  const ca = await createTestCa("api-connections-test-ca");
  caPem = ca.caPem;
  const cert = await ca.issueServerCert();
  server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (_req, res) => {
    const body = JSON.stringify({ apiVersion: "v1", kind: "NamespaceList", metadata: {}, items: [] });
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
  server.on("secureConnection", () => handshakes++);
  url = `https://127.0.0.1:${(await listen(server)).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function kubeConfig(token: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: url, caData: Buffer.from(caPem).toString("base64") }],
    users: [{ name: "u", token }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return kc;
}

async function handshakesFor(kc: KubeConfig, calls: number): Promise<number> {
  const before = handshakes;
  const api = kc.makeApiClient(CoreV1Api);
  for (let i = 0; i < calls; i++) await api.listNamespace();
  return handshakes - before;
}

describe("reuseConnections", () => {
  // undici opens a second connection while the first response is still being released;
  // from then on the pool serves every request.
  it("makes twenty sequential API calls share at most two TLS connections", async () => {
    expect(await handshakesFor(reuseConnections(kubeConfig("t1")), 20)).toBeLessThanOrEqual(2);
  });

  it("is what differs from stock client-node, which handshakes per request", async () => {
    expect(await handshakesFor(kubeConfig("t2"), 20)).toBe(20);
  });

  it("keeps one pool per cluster: a second client on the same KubeConfig adds no handshake", async () => {
    const kc = reuseConnections(kubeConfig("t3"));
    expect(await handshakesFor(kc, 5)).toBeLessThanOrEqual(2);
    expect(await handshakesFor(kc, 5)).toBe(0);
  });
});
