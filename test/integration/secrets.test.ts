// The secrets module against a real Vault-API server (test/support/openbao.ts) and the real
// test kube-apiserver: tenant identity through TokenRequest + Kubernetes auth (the server's
// TokenReview is real), KV v2 and v1, pinned versions, rotation, the path guard and Vault's
// own policy as the second wall, token expiry, renewal and re-login, sealing, single-flight
// logins and reads counted from the server's audit log, and no secret or token in any error,
// log line or debug output.
import { Writable } from "node:stream";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import * as yaml from "js-yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SecretProvider, SecretProviderSpec, SecretRef } from "../../controller/src/api/types.ts";
import { loadOrCreateFingerprintKey, FINGERPRINT_KEY_SECRET } from "../../controller/src/kube/hmacKey.ts";
import { KubeSecretKeys, KubeServiceAccountTokens } from "../../controller/src/kube/serviceAccountTokens.ts";
import { KubeSecretProviderStatusWriter } from "../../controller/src/kube/secretProviderStatus.ts";
import { createLogger } from "../../controller/src/observability/logger.ts";
import { systemClock } from "../../controller/src/api/clock.ts";
import { secretProviderReconciler } from "../../controller/src/reconcile/secretProvider.ts";
import { ConnectorError } from "../../controller/src/api/errors.ts";
import {
  VaultSecretResolver,
  type VaultSecretResolverOptions,
} from "../../controller/src/secrets/resolver.ts";
import { VaultClient } from "../../controller/src/secrets/vaultClient.ts";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.ts";
import { startOpenBao, type OpenBao } from "../support/openbao.ts";

let cp: ControlPlane;
let bao: OpenBao;
let kc: KubeConfig;
let hmacKey: Buffer;
let tokens: KubeServiceAccountTokens;
const providers = new Map<string, SecretProvider>();
const nsLabels = new Map<string, Record<string, string>>();
const resolvers: VaultSecretResolver[] = [];

/** Every secret value written in this suite: none may ever show up in an error or a log. */
const SECRET_VALUES = new Set<string>();
function secret(label: string): string {
  const v = `${label}-${Math.random().toString(36).slice(2)}-S3CR3T`;
  SECRET_VALUES.add(v);
  return v;
}

/** Captured log output of every resolver of the suite. */
let logText = "";
const logSink = new Writable({
  write(chunk: Buffer, _enc, cb) {
    logText += chunk.toString("utf8");
    cb();
  },
});
const log = createLogger({ level: "debug", destination: logSink });

function makeResolver(extra: Partial<VaultSecretResolverOptions> = {}): VaultSecretResolver {
  const r = new VaultSecretResolver({
    providers: { get: (n) => providers.get(n) },
    tokens,
    namespaceLabels: (ns) => nsLabels.get(ns),
    hmacKey,
    log,
    kubeSecrets: new KubeSecretKeys(kc),
    // Most cases count reads one by one; the read-sharing window has its own case.
    shareReadsMs: 0,
    ...extra,
  });
  resolvers.push(r);
  return r;
}

async function kubectlOk(args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** Applies a SecretProvider and keeps the API server's copy (with its defaults) in `providers`. */
async function applyProvider(name: string, spec: SecretProviderSpec): Promise<SecretProvider> {
  const doc = { apiVersion: "cynodeai.io/v1alpha1", kind: "SecretProvider", metadata: { name }, spec };
  const out = await kubectlOk(["apply", "-o", "json", "-f", "-"], yaml.dump(doc));
  const p = JSON.parse(out) as SecretProvider;
  providers.set(name, p);
  return p;
}

async function getProvider(name: string): Promise<SecretProvider> {
  return JSON.parse(await kubectlOk(["get", "secretprovider", name, "-o", "json"])) as SecretProvider;
}

function vaultSpec(over: Partial<NonNullable<SecretProviderSpec["vault"]>> = {}): SecretProviderSpec {
  return {
    vault: {
      address: bao.address,
      caBundle: bao.caPem,
      kv: { mount: "kv", version: 2 },
      auth: { kubernetes: { role: "{namespace}", serviceAccountName: "vault-reader" } },
      ...over,
    },
  };
}

async function caught(p: Promise<unknown>): Promise<ConnectorError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectorError);
    return err as ConnectorError;
  }
  throw new Error("expected the promise to reject");
}

const errorsSeen: ConnectorError[] = [];
async function failure(p: Promise<unknown>): Promise<ConnectorError> {
  const e = await caught(p);
  errorsSeen.push(e);
  return e;
}

function countLogins(role: string): number {
  // The role name is HMAC'd in the audit log; the policy the response grants is not.
  return bao
    .audit()
    .filter(
      (e) =>
        e.type === "response" &&
        e.request?.path === "auth/kubernetes/login" &&
        !e.error &&
        (e.auth?.policies ?? []).includes(`tenant-${role}`),
    ).length;
}
const reads = (p: string) => bao.countAudit({ path: p, operation: "read" });

/** Revokes, behind the resolvers' backs, every token carrying the tenant's policy. */
async function revokeTenantTokens(namespace: string): Promise<void> {
  const accessors = (await bao.call("GET", "auth/token/accessors?list=true")).data.keys as string[];
  for (const a of accessors) {
    const info = await bao.request("POST", "auth/token/lookup-accessor", { accessor: a });
    if ((info.body?.data?.policies ?? []).includes(`tenant-${namespace}`))
      await bao.call("POST", "auth/token/revoke-accessor", { accessor: a });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  cp = await startControlPlane();
  bao = await startOpenBao(cp);
  kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfigPath);
  tokens = new KubeServiceAccountTokens(kc);
  await kubectlOk(["create", "namespace", "connector-system"]);
  hmacKey = await loadOrCreateFingerprintKey(kc, "connector-system");
  await applyProvider("tenant-vault", vaultSpec());
  await applyProvider("tenant-vault-v1", vaultSpec({ kv: { mount: "kv1", version: 1 } }));
  // A cold build of the server binary (hack/testbin.sh openbao) takes many minutes.
}, 45 * 60_000);

afterAll(async () => {
  for (const r of resolvers) await r.close().catch(() => undefined);
  await bao?.stop();
  await cp?.stop();
});

describe("secrets against a real Vault-API server", () => {
  it("runs a real server with Kubernetes auth against the test kube-apiserver", () => {
    // Printed for the record: which server and version the suite ran against.
    console.info(`Vault-API server: ${bao.flavor} ${bao.version} (${bao.binary})`);
    expect(bao.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("the fingerprint key Secret is created once; concurrent creators agree", async () => {
    await kubectlOk(["create", "namespace", "race"]);
    const keys = await Promise.all(Array.from({ length: 4 }, () => loadOrCreateFingerprintKey(kc, "race")));
    for (const k of keys) expect(k.equals(keys[0] as Buffer)).toBe(true);
    expect(keys[0]?.length).toBe(32);
    const again = await loadOrCreateFingerprintKey(kc, "connector-system");
    expect(again.equals(hmacKey)).toBe(true);
    const s = JSON.parse(
      await kubectlOk(["get", "secret", FINGERPRINT_KEY_SECRET, "-n", "race", "-o", "json"]),
    );
    expect(s.immutable).toBe(true);
  });

  it("resolves KV v2 with the tenant's own identity and records the version and a keyed fingerprint", async () => {
    await bao.tenant(cp, "team-a");
    const user = secret("user");
    const pass = secret("pass");
    await bao.writeKv2("connectors/team-a/imap", { username: user, password: pass });
    const r = makeResolver();
    const got = await r.resolve("team-a", { provider: "tenant-vault", name: "imap" });
    expect(got.values).toEqual({ username: user, password: pass });
    expect(got.version).toBe(1);
    expect(got.fingerprint).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    // The login was the tenant's: its policy is tenant-team-a.
    expect(countLogins("team-a")).toBe(1);
    expect(reads("kv/data/connectors/team-a/imap")).toBe(1);
    // Another controller key gives another fingerprint (keyed, not a plain hash).
    const other = makeResolver({ hmacKey: Buffer.alloc(32, 7) });
    const got2 = await other.resolve("team-a", { provider: "tenant-vault", name: "imap" });
    expect(got2.fingerprint).not.toBe(got.fingerprint);
    expect(got2.version).toBe(1);
  });

  it("resolves KV v1: no version, a keyed fingerprint that changes with the value", async () => {
    const r = makeResolver();
    const v1 = secret("v1");
    await bao.writeKv1("connectors/team-a/legacy", { token: v1 });
    const a = await r.resolve("team-a", { provider: "tenant-vault-v1", name: "legacy" });
    expect(a.values).toEqual({ token: v1 });
    expect(a.version).toBeNull();
    const same = await r.resolve("team-a", { provider: "tenant-vault-v1", name: "legacy" });
    expect(same.fingerprint).toBe(a.fingerprint);
    await bao.writeKv1("connectors/team-a/legacy", { token: secret("v1b") });
    const b = await r.resolve("team-a", { provider: "tenant-vault-v1", name: "legacy" });
    expect(b.version).toBeNull();
    expect(b.fingerprint).not.toBe(a.fingerprint);
    // Pinning needs KV v2.
    const e = await failure(r.resolve("team-a", { provider: "tenant-vault-v1", name: "legacy", version: 1 }));
    expect(e.reason).toBe("InvalidSecretRef");
  });

  it("a new version changes version and fingerprint; a pinned version does not change", async () => {
    const r = makeResolver();
    const first = secret("rot1");
    await bao.writeKv2("connectors/team-a/rotating", { password: first });
    const pinnedRef: SecretRef = { provider: "tenant-vault", name: "rotating", version: 1 };
    const latest1 = await r.resolve("team-a", { provider: "tenant-vault", name: "rotating" });
    const pinned1 = await r.resolve("team-a", pinnedRef);
    const second = secret("rot2");
    expect(await bao.writeKv2("connectors/team-a/rotating", { password: second })).toBe(2);
    const latest2 = await r.resolve("team-a", { provider: "tenant-vault", name: "rotating" });
    const pinned2 = await r.resolve("team-a", pinnedRef);
    expect(latest1).toMatchObject({ version: 1, values: { password: first } });
    expect(latest2).toMatchObject({ version: 2, values: { password: second } });
    expect(latest2.fingerprint).not.toBe(latest1.fingerprint);
    expect(pinned1).toEqual(pinned2);
    expect(pinned2).toMatchObject({ version: 1, values: { password: first } });
    expect(pinned2.fingerprint).toBe(latest1.fingerprint);
  });

  it("maps keys, and names a missing key without any value", async () => {
    const r = makeResolver();
    const u = secret("mapu");
    const p = secret("mapp");
    await bao.writeKv2("connectors/team-a/mapped", { user: u, pass: p });
    const got = await r.resolve("team-a", {
      provider: "tenant-vault",
      name: "mapped",
      keys: { username: "user", password: "pass" },
    });
    expect(got.values.username).toBe(u);
    expect(got.values.password).toBe(p);
    const e = await failure(
      r.resolve("team-a", { provider: "tenant-vault", name: "mapped", keys: { apiKey: "api_key" } }),
    );
    expect(e.errorClass).toBe("permanent");
    expect(e.reason).toBe("SecretKeyMissing");
    expect(e.message).toContain('"api_key"');
  });

  it("404 is SecretNotFound; a deleted or destroyed version is SecretDeleted (permanent)", async () => {
    const r = makeResolver();
    const nf = await failure(r.resolve("team-a", { provider: "tenant-vault", name: "nothing-here" }));
    expect(nf).toMatchObject({ errorClass: "permanent", reason: "SecretNotFound", providerStatusCode: 404 });
    await bao.writeKv2("connectors/team-a/doomed", { password: secret("doomed1") });
    await bao.writeKv2("connectors/team-a/doomed", { password: secret("doomed2") });
    await bao.deleteKv2("connectors/team-a/doomed");
    const del = await failure(r.resolve("team-a", { provider: "tenant-vault", name: "doomed" }));
    expect(del).toMatchObject({ errorClass: "permanent", reason: "SecretDeleted" });
    await bao.destroyKv2("connectors/team-a/doomed", [1]);
    const des = await failure(r.resolve("team-a", { provider: "tenant-vault", name: "doomed", version: 1 }));
    expect(des).toMatchObject({ errorClass: "permanent", reason: "SecretDeleted" });
    expect(des.message).toContain("destroyed");
  });

  it("a namespace-A Connector naming a namespace-B path: refused by the guard, and by Vault's policy without it", async () => {
    await bao.tenant(cp, "team-b");
    await bao.writeKv2("connectors/team-b/db", { password: secret("teamb") });
    const r = makeResolver();
    for (const name of [
      "../team-b/db",
      "../../connectors/team-b/db",
      "%2e%2e/team-b/db",
      "/connectors/team-b/db",
    ]) {
      const e = await failure(r.resolve("team-a", { provider: "tenant-vault", name }));
      expect(e).toMatchObject({ errorClass: "validation_error", reason: "InvalidSecretRef" });
      expect(e.message).toContain("spec.credentials.secretRef.name");
    }
    const inj = await failure(r.resolve("team-a", { provider: "tenant-vault", name: "data/x" }));
    expect(inj.message).toMatch(/data\/ or metadata\/ injection/);
    // team-b can read its own secret...
    expect((await r.resolve("team-b", { provider: "tenant-vault", name: "db" })).version).toBe(1);
    // ...team-a's identity, with the guard bypassed, is refused by Vault: 403 => policy_denied
    // (after one fresh login).
    const before = countLogins("team-a");
    const denied = await failure(r.readPath("tenant-vault", "team-a", "connectors/team-b/db"));
    expect(denied).toMatchObject({
      errorClass: "policy_denied",
      reason: "PermissionDenied",
      providerStatusCode: 403,
    });
    expect(denied.message).toContain("after a fresh login");
    expect(countLogins("team-a") - before).toBe(2); // the session's first login + the one re-login
  });

  it("allowedNamespaces and namespaceSelector decide which namespaces may use a provider", async () => {
    await applyProvider("restricted", {
      ...vaultSpec(),
      allowedNamespaces: ["team-a"],
      namespaceSelector: { matchLabels: { "vault-tenant": "yes" } },
    });
    const r = makeResolver();
    expect((await r.resolve("team-a", { provider: "restricted", name: "imap" })).version).toBe(1);
    const e = await failure(r.resolve("team-b", { provider: "restricted", name: "db" }));
    expect(e).toMatchObject({ errorClass: "policy_denied", reason: "NamespaceNotAllowed" });
    nsLabels.set("team-b", { "vault-tenant": "yes" });
    expect((await r.resolve("team-b", { provider: "restricted", name: "db" })).version).toBe(1);
    nsLabels.delete("team-b");
  });

  it("a login that Vault refuses (service account not bound to the role) is policy_denied", async () => {
    await bao.tenant(cp, "team-x", { serviceAccount: "someone-else" });
    await kubectlOk(["create", "serviceaccount", "vault-reader", "-n", "team-x"]);
    const r = makeResolver();
    const e = await failure(r.resolve("team-x", { provider: "tenant-vault", name: "any" }));
    expect(e).toMatchObject({ errorClass: "policy_denied", reason: "PermissionDenied" });
    expect(e.message).toContain("system:serviceaccount:team-x:vault-reader");
    // A service account that does not exist: TokenRequest 404, retried (it may be created).
    await kubectlOk(["create", "namespace", "team-nosa"]);
    const e2 = await failure(r.resolve("team-nosa", { provider: "tenant-vault", name: "any" }));
    expect(e2).toMatchObject({ errorClass: "transient", reason: "ServiceAccountNotFound" });
  });

  it("a token past its TTL is replaced by a new login; a revoked token is replaced after one 403", async () => {
    await bao.tenant(cp, "team-ttl", { tokenTtl: 3, tokenMaxTtl: 3 });
    await bao.writeKv2("connectors/team-ttl/app", { key: secret("ttl") });
    const r = makeResolver({ minTokenTtlMs: 500 });
    const ref = { provider: "tenant-vault", name: "app" };
    await r.resolve("team-ttl", ref);
    await r.resolve("team-ttl", ref);
    expect(countLogins("team-ttl")).toBe(1); // cached token
    await sleep(3_500); // past token_ttl: the server has expired it
    await r.resolve("team-ttl", ref);
    expect(countLogins("team-ttl")).toBe(2);
    expect(bao.countAudit({ path: "kv/data/connectors/team-ttl/app", operation: "read" })).toBe(3);

    // Revoke every token of the tenant behind the resolver's back: the next read gets a 403,
    // logs in once more and succeeds.
    await bao.tenant(cp, "team-rev", { createServiceAccount: true });
    await bao.writeKv2("connectors/team-rev/app", { key: secret("rev") });
    const r2 = makeResolver();
    await r2.resolve("team-rev", ref);
    await revokeTenantTokens("team-rev");
    await r2.resolve("team-rev", ref);
    expect(countLogins("team-rev")).toBe(2);
  });

  it("a token with under 60 s left counts as expired (default threshold, our clock moved forward)", async () => {
    await bao.tenant(cp, "team-60", { tokenTtl: 120, tokenMaxTtl: 600 });
    await bao.writeKv2("connectors/team-60/app", { key: secret("sixty") });
    let offset = 0;
    const r = makeResolver({ clock: { now: () => new Date(Date.now() + offset) }, jitter: 0 });
    const ref = { provider: "tenant-vault", name: "app" };
    await r.resolve("team-60", ref);
    offset = 59_000; // 61 s left: still usable, not yet due for renewal (80 s)
    await r.resolve("team-60", ref);
    expect(countLogins("team-60")).toBe(1);
    offset = 61_000; // 59 s left: expired for us, though the server would still accept it
    await r.resolve("team-60", ref);
    expect(countLogins("team-60")).toBe(2);
  });

  it("a refused renewal is followed by one fresh login", async () => {
    await bao.tenant(cp, "team-renew-fail", { tokenTtl: 300, tokenMaxTtl: 3600 });
    await bao.writeKv2("connectors/team-renew-fail/app", { key: secret("renewfail") });
    let offset = 0;
    const r = makeResolver({ clock: { now: () => new Date(Date.now() + offset) }, jitter: 0 });
    const ref = { provider: "tenant-vault", name: "app" };
    await r.resolve("team-renew-fail", ref);
    await revokeTenantTokens("team-renew-fail");
    const renewsBefore = bao.countAudit({ path: "auth/token/renew-self" });
    offset = 201_000; // past 2/3 of 300 s, 99 s left: due for renewal, which the server refuses
    expect((await r.resolve("team-renew-fail", ref)).version).toBe(1);
    expect(bao.countAudit({ path: "auth/token/renew-self" }) - renewsBefore).toBe(1);
    expect(countLogins("team-renew-fail")).toBe(2);
  });

  it("renews at about 2/3 of the TTL instead of logging in again", async () => {
    await bao.tenant(cp, "team-renew", { tokenTtl: 6, tokenMaxTtl: 120 });
    await bao.writeKv2("connectors/team-renew/app", { key: secret("renew") });
    const r = makeResolver({ minTokenTtlMs: 500, jitter: 0 });
    const ref = { provider: "tenant-vault", name: "app" };
    const renewsBefore = bao.countAudit({ path: "auth/token/renew-self" });
    await r.resolve("team-renew", ref);
    await sleep(4_300); // past 2/3 of 6 s
    await r.resolve("team-renew", ref);
    expect(bao.countAudit({ path: "auth/token/renew-self" }) - renewsBefore).toBe(1);
    expect(countLogins("team-renew")).toBe(1);
    expect(r.stats.renewals).toBe(1);
  });

  it("50 concurrent resolves of one secret in one namespace: one TokenRequest, one login, one read", async () => {
    await bao.tenant(cp, "team-many");
    await bao.writeKv2("connectors/team-many/shared", { password: secret("shared") });
    const r = makeResolver({ shareReadsMs: 500 });
    const tokenRequestsBefore = tokens.requests;
    const results = await Promise.all(
      Array.from({ length: 50 }, () => r.resolve("team-many", { provider: "tenant-vault", name: "shared" })),
    );
    expect(new Set(results.map((x) => x.fingerprint)).size).toBe(1);
    expect(tokens.requests - tokenRequestsBefore).toBe(1);
    expect(countLogins("team-many")).toBe(1);
    expect(reads("kv/data/connectors/team-many/shared")).toBe(1);
    console.info(
      `50 concurrent resolves: ${tokens.requests - tokenRequestsBefore} TokenRequest, ` +
        `${countLogins("team-many")} login, ${reads("kv/data/connectors/team-many/shared")} read (audit log)`,
    );
    // Each caller got its own copy of the values.
    (results[0] as { values: Record<string, string> }).values.password = "changed";
    expect(results[1]?.values.password).not.toBe("changed");
    // A resolve in the same burst shares the read; after the window it reads again (values
    // are held no longer than that; the token stays cached).
    await r.resolve("team-many", { provider: "tenant-vault", name: "shared" });
    expect(reads("kv/data/connectors/team-many/shared")).toBe(1);
    await new Promise((res) => setTimeout(res, 700));
    await r.resolve("team-many", { provider: "tenant-vault", name: "shared" });
    expect(reads("kv/data/connectors/team-many/shared")).toBe(2);
    expect(countLogins("team-many")).toBe(1);
  });

  it("sealed => transient VaultUnavailable and provider status Sealed; unsealing recovers with no action", async () => {
    const r = makeResolver();
    const writer = new KubeSecretProviderStatusWriter(kc);
    const check = secretProviderReconciler({ checker: r, writer, clock: systemClock });
    const sync = (p: SecretProvider) => check(p.metadata.name, p, AbortSignal.timeout(30_000));
    const ref = { provider: "tenant-vault", name: "imap" };
    await r.resolve("team-a", ref);
    let sp = await getProvider("tenant-vault");
    await sync(sp);
    sp = await getProvider("tenant-vault");
    const ready = sp.status?.conditions?.find((c) => c.type === "Ready");
    expect(ready).toMatchObject({ status: "True", reason: "Ready" });
    expect(sp.status?.type).toBe("vault");
    // No change => no write.
    const writes = writer.writes;
    await sync(sp);
    expect(writer.writes).toBe(writes);

    await bao.seal();
    try {
      const e = await failure(r.resolve("team-a", ref));
      expect(e).toMatchObject({
        errorClass: "transient",
        reason: "VaultUnavailable",
        providerStatusCode: 503,
      });
      await sync(sp);
      sp = await getProvider("tenant-vault");
      const sealed = sp.status?.conditions?.find((c) => c.type === "Ready");
      expect(sealed).toMatchObject({ status: "False", reason: "Sealed" });
      const table = await kubectlOk(["get", "sp", "tenant-vault"]);
      expect(table).toMatch(/TYPE\s+ADDRESS\s+READY\s+REASON\s+AGE/);
      expect(table).toMatch(/vault\s+https:\/\/127\.0\.0\.1:\d+\s+False\s+Sealed/);
    } finally {
      await bao.unseal();
    }
    const loginsBefore = countLogins("team-a");
    const back = await r.resolve("team-a", ref);
    expect(back.version).toBe(1);
    expect(countLogins("team-a")).toBe(loginsBefore); // the token survived the seal
    await sync(sp);
    sp = await getProvider("tenant-vault");
    expect(sp.status?.conditions?.find((c) => c.type === "Ready")).toMatchObject({
      status: "True",
      reason: "Ready",
    });
  });

  it("unreachable server and wrong CA are transient; TLS verification cannot be turned off", async () => {
    await applyProvider("down", vaultSpec({ address: "https://127.0.0.1:1" }));
    await applyProvider("wrong-ca", vaultSpec({ caBundle: cp.caPem }));
    const r = makeResolver();
    const down = await failure(r.resolve("team-a", { provider: "down", name: "imap" }));
    expect(down).toMatchObject({ errorClass: "transient", reason: "VaultUnavailable" });
    expect((await r.checkProvider(providers.get("down") as SecretProvider)).reason).toBe("Unreachable");
    const prev = process.env.VAULT_SKIP_VERIFY;
    process.env.VAULT_SKIP_VERIFY = "true";
    try {
      const bad = await failure(r.resolve("team-a", { provider: "wrong-ca", name: "imap" }));
      expect(bad).toMatchObject({ errorClass: "transient", reason: "VaultUnavailable" });
      expect(bad.message).toMatch(/certificate|self.signed|verify/i);
    } finally {
      if (prev === undefined) delete process.env.VAULT_SKIP_VERIFY;
      else process.env.VAULT_SKIP_VERIFY = prev;
    }
  });

  it("platform identities: AppRole and a static token, with Unauthenticated provider status on a bad SecretID", async () => {
    await bao.call("POST", "sys/auth/approle", { type: "approle" });
    await bao.call("PUT", "sys/policies/acl/platform", {
      policy: 'path "kv/data/platform/*" { capabilities = ["read"] }',
    });
    await bao.call("POST", "auth/approle/role/controller", { token_policies: ["platform"], token_ttl: 600 });
    const roleId = (await bao.call("GET", "auth/approle/role/controller/role-id")).data.role_id as string;
    const secretId = (await bao.call("POST", "auth/approle/role/controller/secret-id")).data
      .secret_id as string;
    SECRET_VALUES.add(secretId);
    await kubectlOk([
      "create",
      "secret",
      "generic",
      "vault-approle",
      "-n",
      "connector-system",
      `--from-literal=secret-id=${secretId}`,
      `--from-literal=wrong=not-a-secret-id`,
    ]);
    const platformToken = (
      await bao.call("POST", "auth/token/create", { policies: ["platform"], ttl: "1h", renewable: true })
    ).auth.client_token as string;
    SECRET_VALUES.add(platformToken);
    await kubectlOk([
      "create",
      "secret",
      "generic",
      "vault-token",
      "-n",
      "connector-system",
      `--from-literal=token=${platformToken}`,
    ]);
    await bao.writeKv2("platform/shared/smtp", { password: secret("platform") });
    const tpl = "platform/{namespace}/{name}";
    await applyProvider("platform-approle", {
      vault: {
        ...(vaultSpec().vault as NonNullable<SecretProviderSpec["vault"]>),
        pathTemplate: tpl,
        auth: {
          appRole: {
            roleId,
            secretIdRef: { namespace: "connector-system", name: "vault-approle", key: "secret-id" },
          },
        },
      },
    });
    await applyProvider("platform-token", {
      vault: {
        ...(vaultSpec().vault as NonNullable<SecretProviderSpec["vault"]>),
        pathTemplate: tpl,
        auth: { token: { secretRef: { namespace: "connector-system", name: "vault-token", key: "token" } } },
      },
    });
    await applyProvider("platform-bad", {
      vault: {
        ...(vaultSpec().vault as NonNullable<SecretProviderSpec["vault"]>),
        pathTemplate: tpl,
        auth: {
          appRole: {
            roleId,
            secretIdRef: { namespace: "connector-system", name: "vault-approle", key: "wrong" },
          },
        },
      },
    });
    const r = makeResolver();
    const a = await r.resolve("shared", { provider: "platform-approle", name: "smtp" });
    const t = await r.resolve("shared", { provider: "platform-token", name: "smtp" });
    expect(a.version).toBe(1);
    expect(t.fingerprint).toBe(a.fingerprint);
    expect(await r.checkProvider(providers.get("platform-approle") as SecretProvider)).toMatchObject({
      ready: true,
      reason: "Ready",
    });
    const bad = await r.checkProvider(providers.get("platform-bad") as SecretProvider);
    expect(bad).toMatchObject({ ready: false, reason: "Unauthenticated" });
    const e = await failure(r.resolve("shared", { provider: "platform-bad", name: "smtp" }));
    expect(e.errorClass).toMatch(/policy_denied|validation_error/);
    // A static token is never revoked by the controller.
    await r.close();
    expect((await bao.request("GET", "auth/token/lookup-self", undefined, platformToken)).status).toBe(200);
  });

  it("a killed server is transient VaultUnavailable; after a restart (sealed, then unsealed) the same token works", async () => {
    const r = makeResolver();
    const ref = { provider: "tenant-vault", name: "imap" };
    await r.resolve("team-a", ref);
    const loginsBefore = countLogins("team-a");
    await bao.kill();
    const down = await failure(r.resolve("team-a", ref));
    expect(down).toMatchObject({ errorClass: "transient", reason: "VaultUnavailable" });
    expect(down.message).toMatch(/ECONNREFUSED|ECONNRESET|socket/);
    await bao.restart();
    expect((await r.resolve("team-a", ref)).version).toBe(1);
    expect(countLogins("team-a")).toBe(loginsBefore);
  });

  it("429 from a rate-limit quota is quota_exceeded with the server's Retry-After; 400 is validation_error", async () => {
    await bao.tenant(cp, "team-q");
    await bao.writeKv2("connectors/team-q/app", { key: secret("quota") });
    // The server sends Retry-After (and X-Ratelimit-*) only when asked to.
    await bao.call("POST", "sys/quotas/config", { enable_rate_limit_response_headers: true });
    await bao.call("POST", "sys/quotas/rate-limit/team-q", {
      path: "kv/",
      rate: 1,
      interval: "30s",
      block_interval: "30s",
    });
    try {
      const r = makeResolver();
      const ref = { provider: "tenant-vault", name: "app" };
      await r.resolve("team-q", ref);
      const e = await failure(r.resolve("team-q", ref));
      expect(e).toMatchObject({
        errorClass: "quota_exceeded",
        reason: "QuotaExceeded",
        providerStatusCode: 429,
      });
      // block_interval 30s: the server's Retry-After, not our 1 s default.
      expect(e.retryAfterMs).toBeGreaterThan(5_000);
      expect(e.retryAfterMs).toBeLessThanOrEqual(30_000);
      console.info(`429 Retry-After: ${e.retryAfterMs} ms`);
    } finally {
      await bao.call("DELETE", "sys/quotas/rate-limit/team-q");
    }
    // A role that does not exist: Vault answers 400 to the login.
    await applyProvider(
      "no-such-role",
      vaultSpec({
        auth: { kubernetes: { role: "missing-{namespace}", serviceAccountName: "vault-reader" } },
      }),
    );
    const r = makeResolver();
    const bad = await failure(r.resolve("team-a", { provider: "no-such-role", name: "imap" }));
    expect(bad).toMatchObject({ errorClass: "validation_error", providerStatusCode: 400 });
    expect(bad.message).toContain("missing-team-a");
  });

  it("drops and revokes a provider's sessions when it changes, and every session on close()", async () => {
    await bao.tenant(cp, "team-rot");
    await bao.writeKv2("connectors/team-rot/app", { key: secret("rot") });
    await applyProvider("changing", vaultSpec());
    const r = makeResolver();
    const ref = { provider: "changing", name: "app" };
    await r.resolve("team-rot", ref);
    const revokes = () => bao.countAudit({ path: "auth/token/revoke-self" });
    const before = revokes();
    // Any change of the spec (here the CA bundle's text) invalidates the provider's sessions.
    await applyProvider("changing", vaultSpec({ caBundle: `${bao.caPem}\n` }));
    await r.resolve("team-rot", ref);
    await sleep(300);
    expect(revokes() - before).toBe(1);
    expect(countLogins("team-rot")).toBe(2);
    expect(r.stats.sessions).toBe(1);
    await r.close();
    expect(revokes() - before).toBe(2);
    expect(r.stats.sessions).toBe(0);
  });

  it("file provider (local development): reads <dir>/<namespace>/<name>.json behind the same guard", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "secrets-file-"));
    try {
      fs.mkdirSync(path.join(dir, "team-a"));
      fs.mkdirSync(path.join(dir, "team-b"));
      const v = secret("file");
      fs.writeFileSync(path.join(dir, "team-a", "dev.json"), JSON.stringify({ password: v }));
      fs.writeFileSync(path.join(dir, "team-b", "other.json"), JSON.stringify({ password: secret("fileb") }));
      fs.symlinkSync(path.join(dir, "team-b", "other.json"), path.join(dir, "team-a", "link.json"));
      await applyProvider("local-files", { file: { directory: dir } });
      const r = makeResolver();
      const got = await r.resolve("team-a", { provider: "local-files", name: "dev" });
      expect(got).toMatchObject({ values: { password: v }, version: null });
      const esc = await failure(r.resolve("team-a", { provider: "local-files", name: "../team-b/other" }));
      expect(esc.reason).toBe("InvalidSecretRef");
      const link = await failure(r.resolve("team-a", { provider: "local-files", name: "link" }));
      expect(link.reason).toBe("InvalidSecretRef");
      const nf = await failure(r.resolve("team-a", { provider: "local-files", name: "missing" }));
      expect(nf.reason).toBe("SecretNotFound");
      expect(await r.checkProvider(providers.get("local-files") as SecretProvider)).toMatchObject({
        ready: true,
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the API server enforces the SecretProvider schema (one backend, one auth method, a safe template)", async () => {
    const bad: [string, SecretProviderSpec, RegExp][] = [
      [
        "both",
        { ...vaultSpec(), file: { directory: "/x" } },
        /exactly one of spec.vault, spec.kubernetes and spec.file/,
      ],
      [
        "vault-and-kubernetes",
        { ...vaultSpec(), kubernetes: {} },
        /exactly one of spec.vault, spec.kubernetes and spec.file/,
      ],
      ["none", {}, /exactly one of spec.vault, spec.kubernetes and spec.file/],
      [
        "bad-reader",
        { kubernetes: { serviceAccountName: "Not/A-Name" } },
        /spec.kubernetes.serviceAccountName/,
      ],
      [
        "two-auths",
        vaultSpec({
          auth: {
            kubernetes: { role: "r", serviceAccountName: "sa" },
            token: { secretRef: { namespace: "a", name: "b", key: "c" } },
          },
        }),
        /exactly one of auth.kubernetes, auth.appRole and auth.token/,
      ],
      [
        "no-namespace",
        vaultSpec({ pathTemplate: "connectors/{name}" }),
        /must contain \{namespace\} before \{name\}/,
      ],
      ["dotdot", vaultSpec({ pathTemplate: "../{namespace}/{name}" }), /without '\.\.'/],
      ["kv3", vaultSpec({ kv: { mount: "kv", version: 3 as 2 } }), /Unsupported value: 3/],
    ];
    for (const [name, spec, message] of bad) {
      const doc = { apiVersion: "cynodeai.io/v1alpha1", kind: "SecretProvider", metadata: { name }, spec };
      const res = await cp.kubectl(["apply", "-f", "-"], { input: yaml.dump(doc) });
      expect(res.code, name).not.toBe(0);
      expect(res.stderr, name).toMatch(message);
    }
    const p = providers.get("tenant-vault") as SecretProvider;
    expect(p.spec.vault?.pathTemplate).toBe("connectors/{namespace}/{name}");
    expect(p.spec.vault?.auth.kubernetes?.audiences).toEqual(["vault"]);
    expect(p.spec.vault?.auth.kubernetes?.mountPath).toBe("kubernetes");
  });

  it("writeKv writes KV v2 versions and KV v1 secrets that read back; a read-only tenant's write is PermissionDenied", async () => {
    await bao.tenant(cp, "team-w");
    const root = new VaultClient({ address: bao.address, caBundle: bao.caPem });
    root.setToken(bao.rootToken);
    const first = { access_token: secret("access"), refresh_token: secret("refresh") };
    const second = { access_token: secret("access2"), refresh_token: first.refresh_token, expires_in: 3600 };
    try {
      expect(await root.writeKv("kv", 2, "connectors/team-w/oauth", first)).toEqual({ version: 1 });
      expect(await root.writeKv("kv", 2, "connectors/team-w/oauth", second)).toEqual({ version: 2 });
      // Read back by the server's own API and by the tenant through the resolver.
      const stored = await bao.call("GET", "kv/data/connectors/team-w/oauth");
      expect(stored.data.data).toEqual(second);
      expect(stored.data.metadata.version).toBe(2);
      const got = await makeResolver().resolve("team-w", { provider: "tenant-vault", name: "oauth" });
      expect(got.version).toBe(2);
      expect(got.values).toEqual({ ...second, expires_in: "3600" });
      expect((await root.readKv("kv", 2, "connectors/team-w/oauth", 1)).data).toEqual(first);

      expect(await root.writeKv("kv1", 1, "connectors/team-w/oauth", first)).toEqual({ version: null });
      expect((await bao.call("GET", "kv1/connectors/team-w/oauth")).data).toEqual(first);
      expect(await root.readKv("kv1", 1, "connectors/team-w/oauth")).toEqual({ data: first, version: null });

      // The tenant's policy reads; it does not write.
      const tenant = new VaultClient({ address: bao.address, caBundle: bao.caPem });
      try {
        const jwt = await tokens.request("team-w", "vault-reader", ["vault"], 600);
        await tenant.loginKubernetes("kubernetes", "team-w", jwt);
        const denied = await failure(
          tenant.writeKv("kv", 2, "connectors/team-w/oauth", { access_token: secret("forged") }),
        );
        expect(denied).toMatchObject({
          errorClass: "policy_denied",
          reason: "PermissionDenied",
          providerStatusCode: 403,
        });
      } finally {
        await tenant.revokeSelf();
        tenant.close();
      }
      expect((await bao.call("GET", "kv/data/connectors/team-w/oauth")).data.metadata.version).toBe(2);
    } finally {
      root.close();
    }
  });

  it("with every library's debug output switched on, nothing leaks to stdout/stderr", async () => {
    // The debug module (a transitive dependency; node-vault printed secrets through it before
    // it was replaced), switched on for every namespace as DEBUG=* would.
    const debugModule = (await import("debug" as string)).default as {
      (namespace: string): (...args: unknown[]) => void;
      enable(ns: string): void;
      disable(): string;
    };
    debugModule.enable("*");
    const captured: string[] = [];
    const origOut = process.stdout.write.bind(process.stdout);
    const origErr = process.stderr.write.bind(process.stderr);
    const origConsole = {
      log: console.log,
      info: console.info,
      warn: console.warn,
      error: console.error,
      debug: console.debug,
    };
    const grab = (chunk: unknown): boolean => {
      captured.push(typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("utf8"));
      return true;
    };
    const value = secret("debug");
    await bao.writeKv2("connectors/team-a/debugged", { password: value });
    try {
      process.stdout.write = grab as typeof process.stdout.write;
      process.stderr.write = grab as typeof process.stderr.write;
      for (const k of Object.keys(origConsole) as (keyof typeof origConsole)[])
        console[k] = (...args: unknown[]) => void grab(args.map(String).join(" "));
      const r = makeResolver();
      const got = await r.resolve("team-a", { provider: "tenant-vault", name: "debugged" });
      expect(got.values.password).toBe(value);
      await r.close();
      const withoutOverride = captured.join("").length;
      // Proof that the capture works: a debug logger switched on like the libraries' prints what it is given.
      debugModule("connector-controller:test")("wrote %s", `${value}-probe`);
      const all = captured.join("");
      expect(all.slice(withoutOverride)).toContain(`${value}-probe`);
      expect(all.slice(0, withoutOverride)).not.toContain(value);
      expect(all.slice(0, withoutOverride)).not.toMatch(/hvs\.[A-Za-z0-9_-]{20,}|eyJ[A-Za-z0-9_-]{10,}\./);
    } finally {
      process.stdout.write = origOut;
      process.stderr.write = origErr;
      Object.assign(console, origConsole);
      debugModule.disable();
    }
    SECRET_VALUES.add(`${value}-probe`);
  });

  it("no error, log line or status ever holds a secret value, a Vault token or a service-account JWT", async () => {
    expect(errorsSeen.length).toBeGreaterThan(15);
    const tokenLike =
      /hvs\.[A-Za-z0-9_-]{20,}|\bs\.[A-Za-z0-9]{24}\b|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/;
    for (const e of errorsSeen) {
      const texts = [
        String(e),
        JSON.stringify(e),
        e.stack ?? "",
        String(e.cause ?? ""),
        JSON.stringify(e.cause ?? null),
      ];
      for (const t of texts) {
        for (const v of SECRET_VALUES) expect(t).not.toContain(v);
        expect(t).not.toContain(bao.rootToken);
        expect(t).not.toMatch(tokenLike);
      }
    }
    expect(logText.length).toBeGreaterThan(0);
    for (const v of SECRET_VALUES) expect(logText).not.toContain(v);
    expect(logText).not.toMatch(tokenLike);
    const statuses = await kubectlOk(["get", "secretproviders", "-o", "json"]);
    for (const v of SECRET_VALUES) expect(statuses).not.toContain(v);
  });
});
