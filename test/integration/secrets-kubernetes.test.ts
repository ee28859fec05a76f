// The `kubernetes` SecretProvider against the real kube-apiserver: a Connector's secret is
// a Secret of its own namespace, read by impersonating the namespace's reader service
// account, so the API server's RBAC is the second wall.
//
// The resolver runs as a controller identity that holds only what the chart grants for
// this (impersonate on service accounts named connector-reader): it cannot read a Secret as
// itself, and reads exactly what a tenant's Role lets its reader get. Then end to end,
// through the running controller: a Connector goes active with the Secret's token, a
// changed Secret is a rotation (re-probe, audit row, Event), a missing Secret recovers by
// itself, and no value leaks into status, Events, audit rows or logs.
import { randomBytes } from "node:crypto";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Connector, SecretProvider } from "../../controller/src/api/types.ts";
import { ConnectorError } from "../../controller/src/api/errors.ts";
import { createLogger } from "../../controller/src/observability/logger.ts";
import { KubeServiceAccountTokens } from "../../controller/src/kube/serviceAccountTokens.ts";
import { KubeTenantSecrets } from "../../controller/src/kube/tenantSecrets.ts";
import { VaultSecretResolver } from "../../controller/src/secrets/resolver.ts";
import { startBearerTarget, type BearerTarget } from "../support/bearerTarget.ts";
import {
  apply,
  applyCatalog,
  createIfAbsent,
  kubectlOk,
  serviceAccountKubeConfig,
} from "../support/cluster.ts";
import {
  bearerConnector,
  condition,
  probePath,
  waitConnector as waitForConnector,
} from "../support/connectors.ts";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.ts";
import { startTestController, type TestController } from "../support/controller.ts";
import { openPool, startPostgres, type TestPostgres } from "../support/postgres.ts";
import { eventually } from "../support/wait.ts";

let cp: ControlPlane;
let db: TestPostgres;
let sql: pg.Pool;
let target: BearerTarget;
let running: TestController | undefined;
/** The controller's identity for the resolver cases: the chart's impersonate grant and nothing else. */
let ctlKc: KubeConfig;
let tenantSecrets: KubeTenantSecrets;
let resolver: VaultSecretResolver;
const logLines: string[] = [];
const providers = new Map<string, SecretProvider>();

const A = "ks-team-a";
const B = "ks-team-b";
const BARE = "ks-no-role"; // a reader without any Role
const PROVIDER = "team-secrets";
const OTHER_READER = "team-secrets-other"; // reads as a service account the controller may not impersonate
const CTL_NS = "ks-system";

/** Every secret value written in this file: none may show up anywhere but the target. */
const SECRET_VALUES = new Set<string>();
function secret(label: string): string {
  const v = `${label}-${randomBytes(8).toString("hex")}-S3CR3T`;
  SECRET_VALUES.add(v);
  return v;
}

function providerDoc(
  name: string,
  serviceAccountName?: string,
  allowedNamespaces?: string[],
): SecretProvider {
  return {
    apiVersion: "cynodeai.io/v1alpha1",
    kind: "SecretProvider",
    metadata: { name },
    spec: {
      kubernetes: serviceAccountName ? { serviceAccountName } : {},
      ...(allowedNamespaces ? { allowedNamespaces } : {}),
    },
  };
}

async function putSecret(ns: string, name: string, data: Record<string, string>): Promise<void> {
  await apply(cp, { apiVersion: "v1", kind: "Secret", metadata: { name, namespace: ns }, stringData: data });
}

/** The reader of `ns` may get exactly `names` (a Role with resourceNames, get only). */
async function grantReader(ns: string, names: string[]): Promise<void> {
  await apply(cp, [
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "connector-secrets-reader", namespace: ns },
      rules: [{ apiGroups: [""], resources: ["secrets"], resourceNames: names, verbs: ["get"] }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "connector-secrets-reader", namespace: ns },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "connector-secrets-reader" },
      subjects: [{ kind: "ServiceAccount", name: "connector-reader", namespace: ns }],
    },
  ]);
}

async function caught(p: Promise<unknown>): Promise<ConnectorError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectorError);
    const e = err as ConnectorError;
    for (const v of SECRET_VALUES) expect(`${e.message} ${e.stack}`).not.toContain(v);
    return e;
  }
  throw new Error("expected the promise to reject");
}

const waitConnector = (ns: string, name: string, pred: (c: Connector) => boolean, what: string) =>
  waitForConnector(cp, ns, name, pred, what, 60_000);

const isActive = (c: Connector) =>
  c.status?.state === "active" &&
  condition(c, "Ready")?.status === "True" &&
  condition(c, "Synced")?.status === "True";

beforeAll(async () => {
  [cp, db, target] = await Promise.all([startControlPlane(), startPostgres(), startBearerTarget()]);
  sql = openPool(db.url, 2);
  await applyCatalog(cp);
  for (const ns of [A, B, BARE, CTL_NS]) await createIfAbsent(cp, ["namespace", ns]);
  for (const ns of [A, B, BARE]) await createIfAbsent(cp, ["serviceaccount", "connector-reader", "-n", ns]);
  await createIfAbsent(cp, ["serviceaccount", "other-reader", "-n", A]);
  // The controller's identity here: the chart's grant for this provider and nothing else.
  await createIfAbsent(cp, ["serviceaccount", "controller", "-n", CTL_NS]);
  await apply(cp, [
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "ks-impersonate-readers" },
      rules: [
        {
          apiGroups: [""],
          resources: ["serviceaccounts"],
          resourceNames: ["connector-reader"],
          verbs: ["impersonate"],
        },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "ks-impersonate-readers" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "ks-impersonate-readers" },
      subjects: [{ kind: "ServiceAccount", name: "controller", namespace: CTL_NS }],
    },
  ]);
  ctlKc = await serviceAccountKubeConfig(cp, CTL_NS, "controller");
  tenantSecrets = new KubeTenantSecrets(ctlKc);
  for (const p of [
    providerDoc(PROVIDER, undefined, [A, B, BARE]),
    providerDoc(OTHER_READER, "other-reader"),
  ]) {
    const out = await kubectlOk(cp, ["apply", "-o", "json", "-f", "-"], JSON.stringify(p));
    providers.set(p.metadata.name, JSON.parse(out) as SecretProvider);
  }
  resolver = new VaultSecretResolver({
    providers: { get: (n) => providers.get(n) },
    tokens: new KubeServiceAccountTokens(ctlKc),
    tenantSecrets,
    namespaceLabels: () => ({}),
    hmacKey: Buffer.alloc(32, 9),
    log: createLogger({ level: "silent" }),
    shareReadsMs: 0,
  });
}, 300_000);

afterAll(async () => {
  await resolver?.close();
  await running?.stop();
  await sql?.end();
  await db?.stop();
  await target?.stop();
  await cp?.stop();
});

describe("the kubernetes SecretProvider: resolver against the API server", () => {
  it("the API server stored the provider with its default reader (kubectl get sp -o wide)", async () => {
    expect(providers.get(PROVIDER)?.spec.kubernetes?.serviceAccountName).toBe("connector-reader");
    const refused = await cp.kubectl(["apply", "-f", "-"], {
      input: JSON.stringify({
        ...providerDoc("two-backends"),
        spec: { kubernetes: {}, file: { directory: "/x" } },
      }),
    });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("exactly one of spec.vault, spec.kubernetes and spec.file must be set");
  });

  it("reads a Secret of the Connector's own namespace as its reader: decoded values, key mapping, no version, a keyed fingerprint", async () => {
    const user = secret("user");
    const pass = secret("pass");
    await putSecret(A, "imap-creds", { login: user, password: pass, "multi-line": "a\nb\u00e9" });
    await grantReader(A, ["imap-creds", "hook", "gone"]);
    const got = await resolver.resolve(A, {
      provider: PROVIDER,
      name: "imap-creds",
      keys: { username: "login" },
    });
    expect(got.values).toEqual({ login: user, username: user, password: pass, "multi-line": "a\nb\u00e9" });
    expect(got.version).toBeNull();
    expect(got.fingerprint).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    // The controller's identity cannot read it as itself: only through the reader.
    const direct = ctlKc.makeApiClient(CoreV1Api);
    await expect(direct.readNamespacedSecret({ name: "imap-creds", namespace: A })).rejects.toMatchObject({
      code: 403,
    });
  });

  it("the reader's Role is the second wall: no Role is PermissionDenied, naming who was refused and never a value", async () => {
    const v = secret("bare");
    await putSecret(BARE, "creds", { token: v });
    const e = await caught(resolver.resolve(BARE, { provider: PROVIDER, name: "creds" }));
    expect(e).toMatchObject({
      errorClass: "policy_denied",
      reason: "PermissionDenied",
      providerStatusCode: 403,
    });
    expect(e.message).toContain(`system:serviceaccount:${BARE}:connector-reader may not get it`);
    // A Secret the Role does not name is refused the same way, even in a namespace with a Role.
    await putSecret(A, "unlisted", { token: secret("unlisted") });
    const unlisted = await caught(resolver.resolve(A, { provider: PROVIDER, name: "unlisted" }));
    expect(unlisted.reason).toBe("PermissionDenied");
  });

  it("a reader the controller may not impersonate is PermissionDenied, saying so", async () => {
    await putSecret(A, "other", { token: secret("other") });
    const e = await caught(resolver.resolve(A, { provider: OTHER_READER, name: "other" }));
    expect(e).toMatchObject({ errorClass: "policy_denied", reason: "PermissionDenied" });
    expect(e.message).toContain(`the controller may not impersonate system:serviceaccount:${A}:other-reader`);
  });

  it("a missing Secret is SecretNotFound, a missing key SecretKeyMissing (permanent: retried on the probe schedule)", async () => {
    const nf = await caught(resolver.resolve(A, { provider: PROVIDER, name: "gone" }));
    expect(nf).toMatchObject({ errorClass: "permanent", reason: "SecretNotFound", providerStatusCode: 404 });
    expect(nf.message).toContain(`Secret ${A}/gone does not exist`);
    const km = await caught(
      resolver.resolve(A, { provider: PROVIDER, name: "imap-creds", keys: { token: "api_token" } }),
    );
    expect(km).toMatchObject({ errorClass: "permanent", reason: "SecretKeyMissing" });
    expect(km.message).toContain('"api_token"');
  });

  it("never reads another namespace's Secret: names with /, .. and other tricks are refused before any request", async () => {
    // team-a's Secret, and a Role in team-a that even lets team-b's reader get it.
    await putSecret(A, "hook", { token: secret("a-hook") });
    await apply(cp, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "careless", namespace: A },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "connector-secrets-reader" },
      subjects: [{ kind: "ServiceAccount", name: "connector-reader", namespace: B }],
    });
    const before = tenantSecrets.reads;
    for (const name of [
      `${A}/hook`,
      `../${A}/hook`,
      `/${A}/hook`,
      `..%2f${A}%2fhook`,
      `${A}\uFF0Fhook`,
      `${A}\u2215hook`,
      `namespaces/${A}/secrets/hook`,
      "..",
      "Hook",
    ]) {
      const e = await caught(resolver.resolve(B, { provider: PROVIDER, name }));
      expect({ name, reason: e.reason }).toEqual({ name, reason: "InvalidSecretRef" });
      expect(e.message).toContain("spec.credentials.secretRef.name");
    }
    expect(tenantSecrets.reads).toBe(before);
    // The plain name reads team-b's own namespace, where there is no such Secret.
    await grantReader(B, ["hook"]);
    const own = await caught(resolver.resolve(B, { provider: PROVIDER, name: "hook" }));
    expect(own.reason).toBe("SecretNotFound");
    expect(own.message).toContain(`Secret ${B}/hook`);
    // A pinned version makes no sense for a Secret.
    const pinned = await caught(resolver.resolve(A, { provider: PROVIDER, name: "hook", version: 1 }));
    expect(pinned.reason).toBe("InvalidSecretRef");
    // And a namespace the provider does not allow never gets to read.
    const outside = await caught(resolver.resolve("default", { provider: PROVIDER, name: "hook" }));
    expect(outside.reason).toBe("NamespaceNotAllowed");
  });

  it("a changed Secret has a new fingerprint; the same data keeps it", async () => {
    await putSecret(A, "rotating", { token: secret("r1") });
    await grantReader(A, ["imap-creds", "hook", "gone", "rotating"]);
    const one = await resolver.resolve(A, { provider: PROVIDER, name: "rotating" });
    const again = await resolver.resolve(A, { provider: PROVIDER, name: "rotating" });
    expect(again.fingerprint).toBe(one.fingerprint);
    await putSecret(A, "rotating", { token: secret("r2") });
    const two = await resolver.resolve(A, { provider: PROVIDER, name: "rotating" });
    expect(two.fingerprint).not.toBe(one.fingerprint);
  });
});

describe("the kubernetes SecretProvider through the running controller", () => {
  it("a Connector goes active with its Secret's token; a changed Secret rotates it; a missing Secret recovers by itself; nothing leaks", async () => {
    running = await startTestController(cp, db.url, ["--leader-election-namespace", CTL_NS], logLines);
    // The provider's status: kind kubernetes, Ready.
    const sp = await eventually(
      async () => {
        const out = await kubectlOk(cp, ["get", "sp", PROVIDER, "-o", "wide"]);
        return /kubernetes\s+.*True\s+Ready/.test(out) ? out : undefined;
      },
      "the kubernetes provider to be Ready",
      60_000,
    );
    expect(sp).toContain("connector-reader");

    const t1 = secret("web-token-1");
    target.accepted.add(t1);
    await putSecret(A, "web", { "api-token": t1 });
    await grantReader(A, ["imap-creds", "hook", "gone", "rotating", "web", "later"]);
    await apply(cp, [
      bearerConnector(target.url, A, "web", {
        provider: PROVIDER,
        name: "web",
        keys: { token: "api-token" },
      }),
      bearerConnector(target.url, A, "later", { provider: PROVIDER, name: "later" }),
      bearerConnector(target.url, BARE, "denied", { provider: PROVIDER, name: "creds" }),
    ]);
    await waitConnector(A, "web", isActive, "active with the Secret's token");
    expect(new Set(target.tokensAt(probePath(A, "web")))).toEqual(new Set([t1]));
    const row = await sql.query(
      "select secret_version, secret_fingerprint from connector_instances where namespace = $1 and name = 'web' and deleted_at is null",
      [A],
    );
    expect(row.rows[0]).toMatchObject({ secret_version: null });
    expect(row.rows[0].secret_fingerprint).toMatch(/^hmac-sha256:/);

    // A Secret not there yet: Synced=False SecretNotFound, not Stalled; then it appears.
    await waitConnector(
      A,
      "later",
      (c) => condition(c, "Synced")?.reason === "SecretNotFound" && !condition(c, "Stalled"),
      "Synced=False SecretNotFound",
    );
    const t3 = secret("later-token");
    target.accepted.add(t3);
    await putSecret(A, "later", { token: t3 });
    await waitConnector(A, "later", isActive, "active once the Secret exists");

    // The reader without a Role: PermissionDenied (Stalled, the policy's wall).
    const denied = await waitConnector(
      BARE,
      "denied",
      (c) => condition(c, "Stalled")?.reason === "PermissionDenied",
      "Stalled PermissionDenied",
    );
    expect(condition(denied, "Stalled")?.message).toContain("may not get it");

    // Rotation: the Secret changes, nothing else does.
    const t2 = secret("web-token-2");
    target.accepted.add(t2);
    await putSecret(A, "web", { "api-token": t2 });
    await eventually(
      async () => target.tokensAt(probePath(A, "web")).includes(t2),
      "a probe with the rotated token",
      60_000,
    );
    const rotated = await eventually(async () => {
      const r = await sql.query(
        "select details from connector_audit_events where namespace = $1 and name = 'web' and operation = 'credential_rotated'",
        [A],
      );
      return r.rows.length ? r.rows : undefined;
    }, "a credential_rotated audit row");
    expect(rotated).toEqual([{ details: { from: null, to: null } }]);
    const events = JSON.parse(await kubectlOk(cp, ["get", "events", "-n", A, "-o", "json"])) as {
      items: { reason: string; involvedObject: { name: string } }[];
    };
    expect(
      events.items.some((e) => e.reason === "CredentialRotated" && e.involvedObject.name === "web"),
    ).toBe(true);

    // No value anywhere but the target: status, Events, audit rows, instance rows, logs.
    const places = [
      await kubectlOk(cp, ["get", "connectors", "-A", "-o", "json"]),
      await kubectlOk(cp, ["get", "events", "-A", "-o", "json"]),
      await kubectlOk(cp, ["get", "sp", "-o", "json"]),
      JSON.stringify((await sql.query("select * from connector_audit_events")).rows),
      JSON.stringify((await sql.query("select * from connector_instances")).rows),
      logLines.join(""),
    ];
    for (const v of SECRET_VALUES)
      for (const [i, text] of places.entries()) {
        expect({ place: i, leaked: text.includes(v) }).toEqual({ place: i, leaked: false });
        expect({ place: i, leaked: text.includes(Buffer.from(v).toString("base64")) }).toEqual({
          place: i,
          leaked: false,
        });
      }
  });
});
