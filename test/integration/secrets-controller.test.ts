// Secrets end to end, through the running controller: a real kube-apiserver + etcd, a real
// PostgreSQL, a real Vault-API server (test/support/openbao.ts) with Kubernetes auth against
// that API server, and http-type Connectors whose probes must show a loopback target the
// bearer token held in Vault. SecretProviders and Connectors are applied with kubectl; what
// the tests read is what a platform team reads: kubectl get, Events, the audit table, and
// the Vault server's own audit log (logins and reads).
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../controller/src/api/paths.ts";
import type { Connector } from "../../controller/src/api/types.ts";
import { startBearerTarget, type BearerTarget } from "../support/bearerTarget.ts";
import { apply, kubectlOk } from "../support/cluster.ts";
import {
  bearerConnector,
  condition,
  getConnector,
  probePath,
  waitConnector as waitForConnector,
} from "../support/connectors.ts";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.ts";
import { startTestController, type TestController } from "../support/controller.ts";
import { startOpenBao, type OpenBao } from "../support/openbao.ts";
import { openPool, startPostgres, type TestPostgres } from "../support/postgres.ts";
import { eventually, sleep } from "../support/wait.ts";

let cp: ControlPlane;
let db: TestPostgres;
let sql: pg.Pool;
let bao: OpenBao;
let target: BearerTarget;
let running: TestController | undefined;
const logLines: string[] = [];

const NS_A = "sc-team-a";
const NS_B = "sc-team-b";
const NS_MANY = "sc-many";
const KV2 = "vault-kv2";
const KV1 = "vault-kv1";

/** Every secret value written in this file: none may show up anywhere but the target. */
const SECRET_VALUES = new Set<string>();
function secret(label: string): string {
  const v = `${label}-${randomBytes(8).toString("hex")}-S3CR3T`;
  SECRET_VALUES.add(v);
  return v;
}

/** Figures for the report, printed at the end. */
const figures: Record<string, string | number> = {};

function provider(name: string, kv: { mount: string; version: 1 | 2 }): object {
  return {
    apiVersion: "cynodeai.io/v1alpha1",
    kind: "SecretProvider",
    metadata: { name },
    spec: {
      vault: {
        address: bao.address,
        caBundle: bao.caPem,
        kv,
        auth: { kubernetes: { role: "{namespace}", serviceAccountName: "vault-reader" } },
      },
    },
  };
}

const waitConnector = (
  ns: string,
  name: string,
  pred: (c: Connector) => boolean,
  what: string,
  timeoutMs?: number,
) => waitForConnector(cp, ns, name, pred, what, timeoutMs);

const isActive = (c: Connector) =>
  c.status?.state === "active" &&
  condition(c, "Ready")?.status === "True" &&
  condition(c, "Healthy")?.status === "True" &&
  condition(c, "Synced")?.status === "True";

const syncedFalse = (reason: string) => (c: Connector) =>
  condition(c, "Synced")?.status === "False" && condition(c, "Synced")?.reason === reason;

/** Successful Kubernetes-auth logins whose token carries the tenant's policy (audit log). */
function countLogins(ns: string): number {
  return bao
    .audit()
    .filter(
      (e) =>
        e.type === "response" &&
        e.request?.path === "auth/kubernetes/login" &&
        !e.error &&
        (e.auth?.policies ?? []).includes(`tenant-${ns}`),
    ).length;
}
const reads = (p: string) => bao.countAudit({ path: p, operation: "read" });

async function auditRows(ns: string, name: string, operation: string) {
  const r = await sql.query(
    "select operation, outcome, details from connector_audit_events where namespace = $1 and name = $2 and operation = $3 order by id",
    [ns, name, operation],
  );
  return r.rows as { operation: string; outcome: string; details: Record<string, unknown> }[];
}

async function instanceRow(ns: string, name: string) {
  const r = await sql.query(
    "select state, secret_version, secret_fingerprint from connector_instances where namespace = $1 and name = $2 and deleted_at is null",
    [ns, name],
  );
  return r.rows[0] as
    { state: string; secret_version: number | null; secret_fingerprint: string | null } | undefined;
}

interface KubeEvent {
  reason: string;
  message: string;
  type: string;
  involvedObject: { name: string; namespace: string };
}
async function events(ns: string, name: string, reason?: string): Promise<KubeEvent[]> {
  const list = JSON.parse(await kubectlOk(cp, ["get", "events", "-n", ns, "-o", "json"])) as {
    items: KubeEvent[];
  };
  return list.items.filter(
    (e) => e.involvedObject.name === name && (reason === undefined || e.reason === reason),
  );
}

async function providerReady(name: string): Promise<{ status?: string; reason?: string }> {
  const sp = JSON.parse(await kubectlOk(cp, ["get", "sp", name, "-o", "json"])) as {
    status?: { conditions?: { type: string; status: string; reason: string }[] };
  };
  const c = sp.status?.conditions?.find((x) => x.type === "Ready");
  return { status: c?.status, reason: c?.reason };
}

beforeAll(async () => {
  [cp, db, target] = await Promise.all([startControlPlane(), startPostgres(), startBearerTarget()]);
  bao = await startOpenBao(cp);
  sql = openPool(db.url, 2);
  await kubectlOk(cp, ["apply", "-f", join(projectRoot, "examples/types")]);
  for (const ns of [NS_A, NS_B, NS_MANY]) await bao.tenant(cp, ns);
  await apply(cp, [provider(KV2, { mount: "kv", version: 2 }), provider(KV1, { mount: "kv1", version: 1 })]);
  running = await startTestController(cp, db.url, [], logLines);
  // A cold build of the Vault-API server (hack/testbin.sh openbao) takes many minutes.
}, 45 * 60_000);

afterAll(async () => {
  if (Object.keys(figures).length) console.info(`secrets-controller figures: ${JSON.stringify(figures)}`);
  if (process.env.CONTROLLER_LOG_FILE) writeFileSync(process.env.CONTROLLER_LOG_FILE, logLines.join(""));
  await running?.stop();
  await sql?.end();
  await db?.stop();
  await bao?.stop();
  await target?.stop();
  await cp?.stop();
});

describe("secrets through the running controller (Vault + kube-apiserver + PostgreSQL)", () => {
  it("SecretProvider status shows Ready for the KV v2 and KV v1 providers (kubectl get sp)", async () => {
    const table = await eventually(
      async () => {
        const out = await kubectlOk(cp, ["get", "sp"]);
        const ready = out
          .split("\n")
          .filter((l) => /\bvault\s+https:\/\/127\.0\.0\.1:\d+\s+True\s+Ready\b/.test(l));
        return ready.length === 2 ? out : undefined;
      },
      "both SecretProviders to be Ready",
      60_000,
    );
    expect(table).toMatch(/TYPE\s+ADDRESS\s+READY\s+REASON\s+AGE/);
    expect(table).toContain(KV2);
    expect(table).toContain(KV1);
  });

  it("KV v2 and KV v1 secrets resolve; the connectors go active and the target saw the right token", async () => {
    const t2 = secret("kv2-token");
    const t1 = secret("kv1-token");
    target.accepted.add(t2);
    target.accepted.add(t1);
    expect(await bao.writeKv2(`connectors/${NS_A}/web-v2`, { token: t2 })).toBe(1);
    await bao.writeKv1(`connectors/${NS_A}/web-v1`, { token: t1 });
    await apply(cp, [
      bearerConnector(target.url, NS_A, "kv2", { provider: KV2, name: "web-v2" }),
      bearerConnector(target.url, NS_A, "kv1", { provider: KV1, name: "web-v1" }),
    ]);
    await waitConnector(NS_A, "kv2", isActive, "active (KV v2)");
    await waitConnector(NS_A, "kv1", isActive, "active (KV v1)");
    const seen2 = target.tokensAt(probePath(NS_A, "kv2"));
    const seen1 = target.tokensAt(probePath(NS_A, "kv1"));
    expect(seen2.length).toBeGreaterThan(0);
    expect(new Set(seen2)).toEqual(new Set([t2]));
    expect(seen1.length).toBeGreaterThan(0);
    expect(new Set(seen1)).toEqual(new Set([t1]));
    // The instance rows record the version (KV v2) and a keyed fingerprint, never the value.
    const row2 = await instanceRow(NS_A, "kv2");
    expect(row2).toMatchObject({ state: "active", secret_version: 1 });
    expect(row2?.secret_fingerprint).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    const row1 = await instanceRow(NS_A, "kv1");
    expect(row1).toMatchObject({ state: "active", secret_version: null });
    expect(row1?.secret_fingerprint).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    // The tenant's own identity logged in (its policy is tenant-<namespace>), once per
    // provider (a session is per provider, role and identity), and read the paths.
    expect(countLogins(NS_A)).toBe(2);
    expect(reads(`kv/data/connectors/${NS_A}/web-v2`)).toBeGreaterThan(0);
    expect(reads(`kv1/connectors/${NS_A}/web-v1`)).toBeGreaterThan(0);
  });

  it("a pinned version resolves that version, not the latest", async () => {
    const p1 = secret("pin-v1");
    const p2 = secret("pin-v2");
    target.accepted.add(p1);
    target.accepted.add(p2);
    await bao.writeKv2(`connectors/${NS_A}/pinned`, { token: p1 });
    expect(await bao.writeKv2(`connectors/${NS_A}/pinned`, { token: p2 })).toBe(2);
    await apply(
      cp,
      bearerConnector(target.url, NS_A, "pinned", { provider: KV2, name: "pinned", version: 1 }),
    );
    await waitConnector(NS_A, "pinned", isActive, "active (pinned to version 1)");
    expect(new Set(target.tokensAt(probePath(NS_A, "pinned")))).toEqual(new Set([p1]));
    expect((await instanceRow(NS_A, "pinned"))?.secret_version).toBe(1);
  });

  it("a new version rotates without editing the Connector: re-probe with the new token, audit row {from, to}, Event", async () => {
    const r1 = secret("rot-v1");
    target.accepted.add(r1);
    await bao.writeKv2(`connectors/${NS_A}/rotating`, { token: r1 });
    await apply(cp, bearerConnector(target.url, NS_A, "rotating", { provider: KV2, name: "rotating" }));
    const before = await waitConnector(NS_A, "rotating", isActive, "active before the rotation");
    const generation = before.metadata.generation;

    const r2 = secret("rot-v2");
    const v1b = secret("kv1-token-b");
    const p3 = secret("pin-v3");
    target.accepted.add(r2);
    target.accepted.add(v1b);
    target.accepted.add(p3);
    const pinnedProbesBefore = target.tokensAt(probePath(NS_A, "pinned")).length;
    const written = Date.now();
    expect(await bao.writeKv2(`connectors/${NS_A}/rotating`, { token: r2 })).toBe(2);
    await bao.writeKv1(`connectors/${NS_A}/web-v1`, { token: v1b }); // KV v1: a new fingerprint
    expect(await bao.writeKv2(`connectors/${NS_A}/pinned`, { token: p3 })).toBe(3); // pinned: no rotation

    await eventually(
      async () => target.tokensAt(probePath(NS_A, "rotating")).includes(r2),
      "the target to see the rotated token",
      60_000,
    );
    figures.rotationLatencyMs = Date.now() - written;
    await eventually(
      async () => target.tokensAt(probePath(NS_A, "kv1")).includes(v1b),
      "the target to see the rotated KV v1 token",
      60_000,
    );
    figures.rotationLatencyKv1Ms = Date.now() - written;
    // Once rotated, only the new token is used.
    const seen = target.tokensAt(probePath(NS_A, "rotating"));
    expect(seen.slice(seen.indexOf(r2))).toEqual(seen.slice(seen.indexOf(r2)).map(() => r2));

    // The audit row: version numbers only.
    const rows = await eventually(async () => {
      const r = await auditRows(NS_A, "rotating", "credential_rotated");
      return r.length ? r : undefined;
    }, "a credential_rotated audit row");
    expect(rows).toHaveLength(1);
    expect(rows[0]!.outcome).toBe("success");
    expect(rows[0]!.details).toEqual({ from: 1, to: 2 });
    const v1rows = await eventually(async () => {
      const r = await auditRows(NS_A, "kv1", "credential_rotated");
      return r.length ? r : undefined;
    }, "a credential_rotated audit row for the KV v1 connector");
    expect(v1rows).toHaveLength(1);
    expect(v1rows[0]!.details).toEqual({ from: null, to: null });

    // The Event.
    const ev = await eventually(async () => {
      const e = await events(NS_A, "rotating", "CredentialRotated");
      return e.length ? e : undefined;
    }, "a CredentialRotated Event");
    expect(ev[0]!.type).toBe("Normal");
    expect(ev[0]!.message).toContain("version 1 -> 2");
    await eventually(
      async () => (await events(NS_A, "kv1", "CredentialRotated")).length > 0,
      "a CredentialRotated Event for the KV v1 connector",
    );

    // The Connector was not edited, and it stays active on version 2.
    const after = await waitConnector(NS_A, "rotating", isActive, "active after the rotation");
    expect(after.metadata.generation).toBe(generation);
    expect((await instanceRow(NS_A, "rotating"))?.secret_version).toBe(2);

    // The pinned connector was probed again since version 3 was written: still version 1.
    await eventually(
      async () => target.tokensAt(probePath(NS_A, "pinned")).length >= pinnedProbesBefore + 2,
      "two more probes of the pinned connector",
      60_000,
    );
    expect(new Set(target.tokensAt(probePath(NS_A, "pinned")))).toEqual(new Set([secretOf("pin-v1")]));
    expect(await auditRows(NS_A, "pinned", "credential_rotated")).toEqual([]);
    expect(await events(NS_A, "pinned", "CredentialRotated")).toEqual([]);
  }, 240_000);

  it("a Connector in namespace A naming namespace B's secret through path tricks is refused by the guard", async () => {
    await bao.writeKv2(`connectors/${NS_B}/db`, { token: secret("team-b-only") });
    const tricks: [string, string, RegExp][] = [
      ["sneaky-dotdot", `../${NS_B}/db`, /contains "\.\." \(a parent path\)/],
      ["sneaky-abs", `/connectors/${NS_B}/db`, /must be relative: it starts with "\/"/],
      ["sneaky-pct", `%2e%2e/${NS_B}/db`, /percent-encoded/],
      ["sneaky-data", `data/connectors/${NS_B}/db`, /data\/ or metadata\/ injection/],
    ];
    await apply(
      cp,
      tricks.map(([name, ref]) => bearerConnector(target.url, NS_A, name, { provider: KV2, name: ref })),
    );
    for (const [name, , message] of tricks) {
      const c = await waitConnector(
        NS_A,
        name,
        (x) => condition(x, "Stalled")?.status === "True",
        "Stalled by the path guard",
      );
      expect(condition(c, "Stalled")).toMatchObject({ reason: "InvalidSecretRef" });
      expect(condition(c, "Synced")).toMatchObject({ status: "False", reason: "InvalidSecretRef" });
      expect(condition(c, "Synced")?.message).toContain("spec.credentials.secretRef.name");
      expect(condition(c, "Synced")?.message).toMatch(message);
      expect(condition(c, "Ready")?.status).toBe("False");
      expect(target.tokensAt(probePath(NS_A, name))).toEqual([]);
    }
    // Nobody read team B's secret.
    expect(reads(`kv/data/connectors/${NS_B}/db`)).toBe(0);
    expect(countLogins(NS_B)).toBe(0);
  });

  it("a missing secret => Synced False SecretNotFound; once written, the connector goes active by itself", async () => {
    await apply(cp, bearerConnector(target.url, NS_A, "missing", { provider: KV2, name: "not-written-yet" }));
    const c = await waitConnector(
      NS_A,
      "missing",
      syncedFalse("SecretNotFound"),
      "Synced False SecretNotFound",
    );
    expect(condition(c, "Synced")?.message).toContain("not-written-yet");
    expect(c.status?.state).toBe("error");
    expect(condition(c, "Ready")?.status).toBe("False");
    expect(target.tokensAt(probePath(NS_A, "missing"))).toEqual([]);
    const m = secret("late");
    target.accepted.add(m);
    await bao.writeKv2(`connectors/${NS_A}/not-written-yet`, { token: m });
    await waitConnector(NS_A, "missing", isActive, "active once the secret exists");
    expect(new Set(target.tokensAt(probePath(NS_A, "missing")))).toEqual(new Set([m]));
  });

  it("a deleted secret (KV v2 delete of the latest version) => credential_expired, Synced False SecretDeleted", async () => {
    const d = secret("doomed");
    target.accepted.add(d);
    await bao.writeKv2(`connectors/${NS_A}/doomed`, { token: d });
    await apply(cp, bearerConnector(target.url, NS_A, "doomed", { provider: KV2, name: "doomed" }));
    await waitConnector(NS_A, "doomed", isActive, "active before the delete");
    await bao.deleteKv2(`connectors/${NS_A}/doomed`);
    const c = await waitConnector(
      NS_A,
      "doomed",
      (x) => x.status?.state === "credential_expired" && syncedFalse("SecretDeleted")(x),
      "credential_expired with SecretDeleted",
    );
    expect(condition(c, "Ready")).toMatchObject({ status: "False", reason: "CredentialExpired" });
    expect((await instanceRow(NS_A, "doomed"))?.state).toBe("credential_expired");
    expect(
      (await auditRows(NS_A, "doomed", "state_changed")).some(
        (r) => r.details.to === "credential_expired" && r.details.from === "active",
      ),
    ).toBe(true);
  });

  it("50 Connectors sharing one secret in one namespace: one login, a bounded number of reads per refresh", async () => {
    const shared = secret("shared");
    target.accepted.add(shared);
    await bao.writeKv2(`connectors/${NS_MANY}/shared`, { token: shared });
    const names = Array.from({ length: 50 }, (_, i) => `many-${String(i).padStart(2, "0")}`);
    const interval = 20;
    const started = Date.now();
    await apply(
      cp,
      names.map((n) => bearerConnector(target.url, NS_MANY, n, { provider: KV2, name: "shared" }, interval)),
    );
    await eventually(
      async () => {
        const list = JSON.parse(await kubectlOk(cp, ["get", "conn", "-n", NS_MANY, "-o", "json"])) as {
          items: Connector[];
        };
        return list.items.filter(isActive).length === names.length;
      },
      "all 50 connectors active",
      180_000,
    );
    figures.fiftyActiveMs = Date.now() - started;
    const path = `kv/data/connectors/${NS_MANY}/shared`;
    const probes = () => names.reduce((n, c) => n + target.tokensAt(probePath(NS_MANY, c)).length, 0);
    figures.fiftyLoginsToActive = countLogins(NS_MANY);
    figures.fiftyReadsToActive = reads(path);
    figures.fiftyProbesToActive = probes();

    // One refresh: every connector probed once more.
    const readsA = reads(path);
    const probesA = probes();
    const perConnA = names.map((n) => target.tokensAt(probePath(NS_MANY, n)).length);
    await eventually(
      async () => names.every((n, i) => target.tokensAt(probePath(NS_MANY, n)).length > perConnA[i]!),
      "one more probe of every connector",
      120_000,
    );
    await sleep(500); // let the audit log catch up with the last responses
    const readsB = reads(path);
    const probesB = probes();
    figures.fiftyReadsOneRefresh = readsB - readsA;
    figures.fiftyProbesOneRefresh = probesB - probesA;
    figures.fiftyLoginsTotal = countLogins(NS_MANY);

    expect(countLogins(NS_MANY)).toBe(1);
    // Connectors sharing a secret come due together (the probe grid) and share the read: one
    // read a refresh, give or take a refresh that straddles the measurement's edges.
    expect(readsB - readsA).toBeGreaterThan(0);
    expect(readsB - readsA).toBeLessThanOrEqual(3);
    expect(readsB - readsA).toBeLessThan((probesB - probesA) / 10);
    expect(reads(path)).toBeLessThanOrEqual(probes());
    for (const n of names) expect(new Set(target.tokensAt(probePath(NS_MANY, n)))).toEqual(new Set([shared]));

    // Deleted again, so that they do not load the machine for the rest of the file.
    await kubectlOk(cp, ["delete", "conn", "--all", "-n", NS_MANY, "--wait=true", "--timeout=120s"]);
  }, 420_000);

  it("sealing Vault keeps the last good state (Ready True, active) with Synced False VaultUnavailable; unsealing recovers", async () => {
    await waitConnector(NS_A, "kv2", isActive, "active before the seal");
    const loginsBefore = countLogins(NS_A);
    await bao.seal();
    const sealedAt = Date.now();
    try {
      const c = await waitConnector(
        NS_A,
        "kv2",
        syncedFalse("VaultUnavailable"),
        "Synced False VaultUnavailable",
      );
      figures.sealToVaultUnavailableMs = Date.now() - sealedAt;
      expect(c.status?.state).toBe("active");
      expect(condition(c, "Ready")).toMatchObject({ status: "True", reason: "Available" });
      expect(condition(c, "Stalled")).toBeUndefined();
      // The SecretProvider says Sealed (its check runs every 30 s).
      const table = await eventually(
        async () => {
          const out = await kubectlOk(cp, ["get", "sp", KV2]);
          return /vault\s+https:\/\/127\.0\.0\.1:\d+\s+False\s+Sealed/.test(out) ? out : undefined;
        },
        "the SecretProvider to show Sealed",
        90_000,
      );
      figures.sealToProviderSealedMs = Date.now() - sealedAt;
      expect(table).toMatch(/False\s+Sealed/);
      // Still the last good state.
      const still = await getConnector(cp, NS_A, "kv2");
      expect(still?.status?.state).toBe("active");
      expect(condition(still, "Ready")?.status).toBe("True");
    } finally {
      await bao.unseal();
    }
    const unsealedAt = Date.now();
    await waitConnector(NS_A, "kv2", isActive, "Synced again after the unseal", 120_000);
    figures.unsealToSyncedMs = Date.now() - unsealedAt;
    await eventually(
      async () => (await providerReady(KV2)).status === "True",
      "the SecretProvider to be Ready again",
      90_000,
    );
    figures.unsealToProviderReadyMs = Date.now() - unsealedAt;
    // Tokens survive a seal: no new login was needed.
    expect(countLogins(NS_A)).toBe(loginsBefore);
  }, 360_000);

  it("no secret value appears in the controller's logs, Events, Connector status, audit rows or error messages", async () => {
    expect(SECRET_VALUES.size).toBeGreaterThan(10);
    const logs = logLines.join("");
    expect(logs.length).toBeGreaterThan(1000);
    const evs = await kubectlOk(cp, ["get", "events", "-A", "-o", "json"]);
    const conns = await kubectlOk(cp, ["get", "conn", "-A", "-o", "json"]);
    const sps = await kubectlOk(cp, ["get", "sp", "-o", "json"]);
    const audit = JSON.stringify((await sql.query("select * from connector_audit_events")).rows);
    const instances = JSON.stringify((await sql.query("select * from connector_instances")).rows);
    // The error messages the controller produced: its warnings and errors, and every
    // condition message and lastError in status.
    const errorTexts = logs
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as { level: string; err?: unknown; msg?: string })
      .filter((l) => ["warn", "error", "fatal"].includes(l.level))
      .map((l) => JSON.stringify(l));
    expect(errorTexts.length).toBeGreaterThan(0);
    const statusMessages = (JSON.parse(conns) as { items: Connector[] }).items.flatMap((c) => [
      ...(c.status?.conditions ?? []).map((x) => x.message),
      JSON.stringify(c.status?.lastError ?? null),
    ]);
    const places: Record<string, string> = {
      logs,
      events: evs,
      connectors: conns,
      secretProviders: sps,
      auditRows: audit,
      instanceRows: instances,
      errorMessages: errorTexts.join("\n") + statusMessages.join("\n"),
    };
    const tokenLike =
      /hvs\.[A-Za-z0-9_-]{20,}|\bs\.[A-Za-z0-9]{24}\b|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/;
    for (const [where, text] of Object.entries(places)) {
      for (const v of SECRET_VALUES) expect(text.includes(v), `${where} holds a secret value`).toBe(false);
      expect(text.includes(bao.rootToken), `${where} holds the Vault root token`).toBe(false);
      expect(tokenLike.test(text), `${where} holds something like a Vault token or a JWT`).toBe(false);
    }
    // The scan is meaningful: the places hold what the tests did.
    expect(audit).toContain("credential_rotated");
    expect(evs).toContain("CredentialRotated");
    expect(conns).toContain("SecretDeleted");
  });
});

/** The value of a secret made with `secret(label)` (labels are unique in this file). */
function secretOf(label: string): string {
  const v = [...SECRET_VALUES].find((s) => s.startsWith(`${label}-`));
  if (!v) throw new Error(`no secret labelled ${label}`);
  return v;
}
