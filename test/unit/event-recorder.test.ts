// The Event recorder against a local HTTPS server that holds every request until released:
// a few writes in flight, a bounded backlog written in order, the rest dropped and counted.
import * as https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Connector } from "../../controller/src/api/types.ts";
import { reuseConnections } from "../../controller/src/kube/connections.ts";
import { KubeEventRecorder } from "../../controller/src/kube/events.ts";
import { listen } from "../support/net.ts";
import { createTestCa } from "../support/pki.ts";
import { eventually } from "../support/wait.ts";
import { silentLogger } from "../support/memory.ts";

let server: https.Server;
let kc: KubeConfig;
const held: { reason: string; res: ServerResponse }[] = [];
const written: string[] = [];
let maxConcurrent = 0;

beforeAll(async () => {
  const ca = await createTestCa("event-recorder-test-ca");
  const cert = await ca.issueServerCert();
  server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (req: IncomingMessage, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      const event = JSON.parse(body) as { reason: string };
      held.push({ reason: event.reason, res });
      maxConcurrent = Math.max(maxConcurrent, held.length);
    });
  });
  const { port } = await listen(server);
  kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      {
        name: "c",
        server: `https://127.0.0.1:${port}`,
        caData: Buffer.from(ca.caPem).toString("base64"),
      },
    ],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  reuseConnections(kc);
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** Answers every held request (201), in arrival order, until the recorder is idle. */
async function releaseAll(recorder: KubeEventRecorder): Promise<void> {
  let idle = false;
  void recorder.idle().then(() => (idle = true));
  while (!idle) {
    for (const { reason, res } of held.splice(0)) {
      written.push(reason);
      res.writeHead(201, { "content-type": "application/json" });
      res.end(JSON.stringify({ apiVersion: "v1", kind: "Event", metadata: { name: reason } }));
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function connector(i: number): Connector {
  return {
    apiVersion: "connectors.cynodeai.io/v1alpha1",
    kind: "Connector",
    metadata: { name: `c-${i}`, namespace: "team-a", uid: `uid-${i}` },
    spec: {},
  } as unknown as Connector;
}

describe("KubeEventRecorder", () => {
  it("writes two at a time, keeps three waiting in order, and drops and counts the rest", async () => {
    let dropped = 0;
    const recorder = new KubeEventRecorder(kc, silentLogger, {
      maxInFlight: 2,
      maxBacklog: 3,
      dropped: () => dropped++,
    });
    for (let i = 0; i < 10; i++) recorder.record(connector(i), "Normal", `Ready${i}`, "ready");
    expect(dropped).toBe(5);
    await eventually(() => held.length === 2, "the requests", { timeoutMs: 10_000, intervalMs: 10 });
    await new Promise((resolve) => setTimeout(resolve, 200)); // time for a third, were it sent
    expect(held.length).toBe(2);
    await releaseAll(recorder);
    expect(maxConcurrent).toBe(2);
    expect(written).toEqual(["Ready0", "Ready1", "Ready2", "Ready3", "Ready4"]);
  });
});
