// Health end to end, through the running controller: a real kube-apiserver + etcd, a real
// PostgreSQL and a real Dovecot (IMAPS and submission) on loopback; credentials from a
// `file` SecretProvider (<directory>/<namespace>/<name>.json). The controller runs with a
// small breaker (threshold 2, cooldown 8 s, failing connectors re-probed every 2 s) so the
// whole life of a failing connector - degraded, error with the breaker open, the half-open
// probe, active again - fits in a test.
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Connector, JsonObject } from "../../controller/src/api/types.ts";
import { startBearerTarget, type BearerTarget } from "../support/bearerTarget.ts";
import { apply, kubectlOk } from "../support/cluster.ts";
import {
  condition,
  getConnector,
  httpConnector,
  waitConnector as waitForConnector,
} from "../support/connectors.ts";
import type { ControlPlane } from "../support/controlPlane.ts";
import type { TestController } from "../support/controller.ts";
import { startDovecot, type TestDovecot } from "../support/dovecot.ts";
import { fileSecrets, type FileSecrets } from "../support/fileSecrets.ts";
import { eventually } from "../support/wait.ts";
import { startWorld, type World } from "../support/world.ts";

let world: World;
let cp: ControlPlane;
let sql: pg.Pool;
let dovecot: TestDovecot;
let running: TestController;
let secrets: FileSecrets;

const NS = "health";
const PROVIDER = "local-files";
const figures: Record<string, number | string> = {};

function writeSecret(name: string, values: Record<string, string>): void {
  secrets.write(NS, name, values);
}

const OWNER = { type: "group" as const, id: "7b2c1f4e-5d3a-4c8b-9e2f-0a6d8c4b1e73" };
const PROJECT = "3a91d2c5-8e47-4f6a-b1c3-5d9e7f2a4b68";

function imapConnector(name: string, secretName: string, extra: JsonObject = {}): Connector {
  return {
    apiVersion: "cynodeai.io/v1alpha1",
    kind: "Connector",
    metadata: { name, namespace: NS },
    spec: {
      type: "imap",
      typeVersion: 1,
      enabled: true,
      owner: OWNER,
      projectId: PROJECT,
      config: {
        host: "127.0.0.1",
        port: dovecot.imapsPort,
        security: "tls",
        mailbox: dovecot.mailbox,
        caBundle: dovecot.caPem,
        ...extra,
      },
      credentials: { mode: "secretRef", secretRef: { provider: PROVIDER, name: secretName } },
      policy: { allowOperations: ["readInbox"], actionScope: ["connector.operation.read"] },
      limits: { maxParallelInvocations: 2, rateLimit: { rps: 1, burst: 2 } },
      healthCheck: { intervalSeconds: 10, timeoutSeconds: 8 },
    },
  };
}

function smtpConnector(name: string, secretName: string): Connector {
  return {
    apiVersion: "cynodeai.io/v1alpha1",
    kind: "Connector",
    metadata: { name, namespace: NS },
    spec: {
      type: "smtp",
      typeVersion: 2,
      enabled: true,
      owner: OWNER,
      projectId: PROJECT,
      config: {
        host: "127.0.0.1",
        port: dovecot.submissionPort,
        security: "starttls",
        from: "probe@example.com",
        caBundle: dovecot.caPem,
      },
      credentials: { mode: "secretRef", secretRef: { provider: PROVIDER, name: secretName } },
      policy: { allowOperations: ["verifyConnection"], actionScope: ["connector.operation.read"] },
      limits: { maxParallelInvocations: 2, rateLimit: { rps: 1, burst: 3 } },
      healthCheck: { intervalSeconds: 10, timeoutSeconds: 8 },
    },
  };
}

const waitConnector = (name: string, pred: (c: Connector) => boolean, what: string, timeoutMs?: number) =>
  waitForConnector(cp, NS, name, pred, what, timeoutMs);

const isActive = (c: Connector) =>
  c.status?.state === "active" &&
  condition(c, "Ready")?.status === "True" &&
  condition(c, "Healthy")?.status === "True";

async function stateChanges(name: string): Promise<{ from: string; to: string; at: Date }[]> {
  const r = await sql.query(
    `select details->>'from' as "from", details->>'to' as "to", at from connector_audit_events
      where namespace = $1 and name = $2 and operation = 'state_changed' order by id`,
    [NS, name],
  );
  return r.rows as { from: string; to: string; at: Date }[];
}

async function breakerTrips(type: string): Promise<number> {
  const res = await fetch(`http://${running.addresses.metrics!}/metrics`);
  const text = await res.text();
  const m = new RegExp(
    `^connector_circuit_breaker_trips_total\\{[^}]*type="${type}"[^}]*\\} (\\d+)`,
    "m",
  ).exec(text);
  return m ? Number(m[1]) : 0;
}

beforeAll(async () => {
  world = await startWorld({ namespaces: [NS] });
  ({ cp, sql } = world);
  dovecot = await startDovecot();
  world.defer("dovecot", () => dovecot.destroy());
  secrets = fileSecrets(world.tempDir("cc-health-secrets-"));
  await apply(cp, secrets.provider(PROVIDER));
  writeSecret("imap-creds", { username: dovecot.user, password: dovecot.password });
  running = await world.startController([
    "--breaker-threshold",
    "2",
    "--breaker-cooldown",
    "8s",
    "--failure-retry",
    "2s",
  ]);
}, 600_000);

afterAll(async () => {
  if (Object.keys(figures).length) console.info(`health figures: ${JSON.stringify(figures)}`);
  await world?.stop();
});

describe("health probes through the running controller (Dovecot, file SecretProvider)", () => {
  it("IMAP over implicit TLS with the right credentials => active, Healthy True", async () => {
    const started = Date.now();
    await apply(cp, imapConnector("mailbox", "imap-creds"));
    const c = await waitConnector("mailbox", isActive, "active");
    figures.imapApplyToActiveMs = Date.now() - started;
    expect(condition(c, "Healthy")).toMatchObject({ status: "True", reason: "ConnectivityOK" });
    expect(condition(c, "Synced")?.status).toBe("True");
    expect(condition(c, "Ready")).toMatchObject({ status: "True", reason: "Available" });
  });

  it("a wrong password => credential_expired (Healthy False AuthenticationFailed); the right one brings it back", async () => {
    writeSecret("imap-wrong", { username: dovecot.user, password: "not-the-password" });
    await apply(cp, imapConnector("wrong-password", "imap-wrong"));
    const c = await waitConnector(
      "wrong-password",
      (x) => x.status?.state === "credential_expired",
      "credential_expired",
    );
    expect(condition(c, "Healthy")).toMatchObject({ status: "False", reason: "AuthenticationFailed" });
    expect(condition(c, "Healthy")?.message).toContain("authentication failed");
    expect(condition(c, "Ready")).toMatchObject({ status: "False", reason: "CredentialExpired" });
    expect(c.status?.lastError?.message).toContain("authentication failed");
    // Rotating the file to the right password: picked up without editing the Connector.
    writeSecret("imap-wrong", { username: dovecot.user, password: dovecot.password });
    await waitConnector("wrong-password", isActive, "active with the right password");
    const rotated = await sql.query(
      "select details from connector_audit_events where namespace = $1 and name = $2 and operation = 'credential_rotated'",
      [NS, "wrong-password"],
    );
    expect(rotated.rows.map((r: { details: unknown }) => r.details)).toEqual([{ from: null, to: null }]);
    // Gone again: only one imap connector should count breaker trips below.
    await kubectlOk(cp, ["delete", "conn", "wrong-password", "-n", NS, "--wait=true", "--timeout=60s"]);
  });

  it("SMTP against Dovecot submission (STARTTLS, AUTH) with the right credentials => active", async () => {
    writeSecret("smtp-creds", { username: dovecot.user, password: dovecot.password });
    await apply(cp, smtpConnector("submission", "smtp-creds"));
    const c = await waitConnector("submission", isActive, "active");
    expect(condition(c, "Healthy")).toMatchObject({ status: "True", reason: "ConnectivityOK" });
  });

  it("an http Connector whose host is outside the type's egress allowlist => Healthy False EgressDenied, no connection", async () => {
    // 127.0.0.2 is loopback too, but only localhost and 127.0.0.1 are in the http type's list.
    let outside: BearerTarget | undefined;
    try {
      outside = await startBearerTarget({ host: "127.0.0.2" });
      const c = httpConnector(NS, "outside-allowlist", outside.url);
      c.spec.config = { baseUrl: outside.url, healthPath: "/health", auth: { scheme: "none" } };
      c.spec.healthCheck = { intervalSeconds: 10, timeoutSeconds: 5 };
      await apply(cp, c);
      const got = await waitConnector(
        "outside-allowlist",
        (x) => condition(x, "Healthy")?.reason === "EgressDenied",
        "Healthy False EgressDenied",
      );
      expect(condition(got, "Healthy")?.status).toBe("False");
      expect(condition(got, "Healthy")?.message).toBe(
        "host 127.0.0.2 is not in the egress allowlist of type http",
      );
      expect(got.status?.state).toBe("error");
      expect(condition(got, "Ready")?.status).toBe("False");
      // The probe ran more than once by now (re-probed), and never connected.
      await new Promise((r) => setTimeout(r, 3000));
      expect(outside.connections()).toBe(0);
      expect(outside.requests).toEqual([]);
    } finally {
      await outside?.stop();
    }
  });

  it("server stopped => degraded, then error with the breaker open; after the cooldown a half-open probe brings it back", async () => {
    await waitConnector("mailbox", isActive, "active before the stop");
    const tripsBefore = await breakerTrips("imap");
    const changesBefore = (await stateChanges("mailbox")).length;
    await dovecot.stop();
    const stoppedAt = Date.now();
    let c: Connector;
    try {
      c = await waitConnector(
        "mailbox",
        (x) => x.status?.state === "error" && condition(x, "Healthy")?.reason === "CircuitOpen",
        "error with the breaker open",
      );
      figures.stopToCircuitOpenObservedMs = Date.now() - stoppedAt;
      expect(condition(c, "Healthy")?.status).toBe("False");
      expect(condition(c, "Healthy")?.message).toContain("health checks are paused after repeated failures");
      expect(condition(c, "Healthy")?.message).toContain("connection refused");
      expect(condition(c, "Ready")).toMatchObject({ status: "False", reason: "Unavailable" });
      // The way there, from the audit table: active -> degraded -> error.
      const changes = (await stateChanges("mailbox")).slice(changesBefore);
      expect(changes.map((x) => `${x.from}->${x.to}`).slice(0, 2)).toEqual([
        "active->degraded",
        "degraded->error",
      ]);
      figures.stopToDegradedMs = changes[0]!.at.getTime() - stoppedAt;
      figures.stopToErrorMs = changes[1]!.at.getTime() - stoppedAt;
      figures.degradedToErrorMs = changes[1]!.at.getTime() - changes[0]!.at.getTime();
      // The trip was counted on /metrics.
      await eventually(async () => (await breakerTrips("imap")) > tripsBefore, "the breaker trip metric");
      figures.breakerTripsImap = `${tripsBefore} -> ${await breakerTrips("imap")}`;
      // While the server stays away, half-open probes fail and the breaker opens again: still error.
      await new Promise((r) => setTimeout(r, 12_000));
      const still = await getConnector(cp, NS, "mailbox");
      expect(still?.status?.state).toBe("error");
      expect(condition(still, "Healthy")?.reason).toBe("CircuitOpen");
    } finally {
      await dovecot.start();
    }
    const startedAt = Date.now();
    await waitConnector("mailbox", isActive, "active again after the server returned", 120_000);
    figures.serverBackToActiveMs = Date.now() - startedAt;
    const last = (await stateChanges("mailbox")).at(-1)!;
    expect(`${last.from}->${last.to}`).toBe("error->active");
    // A trip is counted once per opening, not for every failed half-open probe.
    expect(await breakerTrips("imap")).toBe(tripsBefore + 1);
  }, 300_000);

  it("no credential appears in the controller's logs, Events or status", async () => {
    const logs = running.logLines.join("");
    const evs = await kubectlOk(cp, ["get", "events", "-A", "-o", "json"]);
    const conns = await kubectlOk(cp, ["get", "conn", "-A", "-o", "json"]);
    for (const text of [logs, evs, conns]) expect(text).not.toContain(dovecot.password);
  });
});
