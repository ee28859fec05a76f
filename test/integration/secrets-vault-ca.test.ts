// A Vault provider's CA from a ConfigMap or Secret (spec.vault.caBundleRef), against the
// real Vault-API server over TLS (test/support/openbao.ts: its own throwaway CA, TLS always
// verified) and the real kube-apiserver. The CA object lives in the controller's own
// namespace; the controller reads it with an identity that may get that one object and
// nothing else. A CA that does not sign Vault's certificate fails the TLS handshake; putting
// the right one into the ConfigMap is picked up without touching the provider; a missing
// ConfigMap makes the provider's Ready InvalidConfig, and Connectors keep the CA last read.
// Last, through the running controller (its namespace from --leader-election-namespace): a
// Connector whose provider names its CA by caBundleRef goes active.
import { KubeConfig } from "@kubernetes/client-node";
import * as yaml from "js-yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemClock } from "../../controller/src/api/clock.ts";
import { ConnectorError } from "../../controller/src/api/errors.ts";
import type { CaBundleRef, SecretProvider } from "../../controller/src/api/types.ts";
import { KubeSecretProviderStatusWriter } from "../../controller/src/kube/secretProviderStatus.ts";
import { KubeServiceAccountTokens } from "../../controller/src/kube/serviceAccountTokens.ts";
import { KubeCaBundles } from "../../controller/src/kube/tenantSecrets.ts";
import { createLogger } from "../../controller/src/observability/logger.ts";
import { secretProviderReconciler } from "../../controller/src/reconcile/secretProvider.ts";
import { VaultSecretResolver } from "../../controller/src/secrets/resolver.ts";
import { startBearerTarget, type BearerTarget } from "../support/bearerTarget.ts";
import {
  apply,
  applyCatalog,
  createIfAbsent,
  kubectlOk,
  serviceAccountKubeConfig,
} from "../support/cluster.ts";
import { condition, httpConnector, waitConnector } from "../support/connectors.ts";
import { startTestController, type TestController } from "../support/controller.ts";
import { startPostgres, type TestPostgres } from "../support/postgres.ts";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.ts";
import { startOpenBao, type OpenBao } from "../support/openbao.ts";
import { createTestCa } from "../support/pki.ts";
import { eventually, sleep } from "../support/wait.ts";

const CTL_NS = "vca-system";
const TENANT = "vca-team";
const REFRESH_MS = 1_000;

let cp: ControlPlane;
let bao: OpenBao;
let resolver: VaultSecretResolver;
let otherCaPem: string;
let db: TestPostgres | undefined;
let target: BearerTarget | undefined;
let running: TestController | undefined;
const providers = new Map<string, SecretProvider>();
const logLines: string[] = [];

async function applyProvider(name: string, caBundleRef: CaBundleRef): Promise<SecretProvider> {
  const doc = {
    apiVersion: "cynodeai.io/v1alpha1",
    kind: "SecretProvider",
    metadata: { name },
    spec: {
      vault: {
        address: bao.address,
        caBundleRef,
        kv: { mount: "kv", version: 2 },
        auth: { kubernetes: { role: "{namespace}", serviceAccountName: "vault-reader" } },
      },
    },
  };
  const p = JSON.parse(
    await kubectlOk(cp, ["apply", "-o", "json", "-f", "-"], yaml.dump(doc)),
  ) as SecretProvider;
  providers.set(name, p);
  return p;
}

async function configMap(name: string, pem: string): Promise<void> {
  await apply(cp, {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name, namespace: CTL_NS },
    data: { "ca.crt": pem },
  });
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

beforeAll(async () => {
  cp = await startControlPlane();
  bao = await startOpenBao(cp);
  otherCaPem = (await createTestCa("not-vaults-ca")).caPem;
  await createIfAbsent(cp, ["namespace", CTL_NS]);
  await bao.tenant(cp, TENANT);
  await bao.writeKv2(`connectors/${TENANT}/hook`, { token: "not-a-real-secret" });
  // The controller's identity: TokenRequest for tenants, and get on the CA objects only
  // (what the chart's Role grants for vault.caBundleRef).
  await createIfAbsent(cp, ["serviceaccount", "controller", "-n", CTL_NS]);
  await createIfAbsent(cp, [
    "clusterrole",
    "vca-token-request",
    "--verb=create",
    "--resource=serviceaccounts/token",
  ]);
  await createIfAbsent(cp, [
    "clusterrolebinding",
    "vca-token-request",
    "--clusterrole=vca-token-request",
    `--serviceaccount=${CTL_NS}:controller`,
  ]);
  await createIfAbsent(cp, [
    "role",
    "vca-ca-reader",
    "-n",
    CTL_NS,
    "--verb=get",
    "--resource=configmaps,secrets",
    "--resource-name=vault-ca",
    "--resource-name=rotating-ca",
    "--resource-name=vault-ca-secret",
    "--resource-name=missing-ca",
  ]);
  await createIfAbsent(cp, [
    "rolebinding",
    "vca-ca-reader",
    "-n",
    CTL_NS,
    "--role=vca-ca-reader",
    `--serviceaccount=${CTL_NS}:controller`,
  ]);
  const kc = await serviceAccountKubeConfig(cp, CTL_NS, "controller");
  resolver = new VaultSecretResolver({
    providers: { get: (n) => providers.get(n) },
    tokens: new KubeServiceAccountTokens(kc),
    caBundleSource: new KubeCaBundles(kc, CTL_NS),
    caRefreshMs: REFRESH_MS,
    namespaceLabels: () => ({}),
    hmacKey: Buffer.alloc(32, 3),
    log: createLogger({
      level: "debug",
      destination: { write: (l: string) => void logLines.push(l) } as never,
    }),
    shareReadsMs: 0,
  });
  // A cold build of the server binary (hack/testbin.sh openbao) takes many minutes.
}, 45 * 60_000);

afterAll(async () => {
  await running?.stop();
  await db?.stop();
  await target?.stop();
  await resolver?.close();
  await bao?.stop();
  await cp?.stop();
});

describe("Vault's CA from a ConfigMap or Secret of the controller's namespace (caBundleRef)", () => {
  it("trusts the PEM of a ConfigMap: the provider is Ready and a tenant's secret resolves over verified TLS", async () => {
    await configMap("vault-ca", bao.caPem);
    const p = await applyProvider("vca-configmap", { kind: "ConfigMap", name: "vault-ca" });
    expect(p.spec.vault?.caBundleRef?.key).toBe("ca.crt"); // the CRD's default
    expect(await resolver.checkProvider(p)).toMatchObject({ ready: true, reason: "Ready" });
    const got = await resolver.resolve(TENANT, { provider: "vca-configmap", name: "hook" });
    expect(got.version).toBe(1);
  });

  it("trusts the PEM of a Secret too", async () => {
    await apply(cp, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "vault-ca-secret", namespace: CTL_NS },
      stringData: { "tls.ca": bao.caPem },
    });
    const p = await applyProvider("vca-secret", { kind: "Secret", name: "vault-ca-secret", key: "tls.ca" });
    expect(await resolver.checkProvider(p)).toMatchObject({ ready: true, reason: "Ready" });
    expect((await resolver.resolve(TENANT, { provider: "vca-secret", name: "hook" })).version).toBe(1);
  });

  it("a CA that did not sign Vault's certificate fails TLS; the right one in the ConfigMap is picked up without touching the provider", async () => {
    await configMap("rotating-ca", otherCaPem);
    const p = await applyProvider("vca-rotating", { kind: "ConfigMap", name: "rotating-ca" });
    const check = await resolver.checkProvider(p);
    expect(check).toMatchObject({ ready: false, reason: "Unreachable" });
    expect(check.message).toMatch(/certificate|TLS|self.signed|issuer/i);
    const e = await caught(resolver.resolve(TENANT, { provider: "vca-rotating", name: "hook" }));
    expect(e.errorClass).toBe("transient");
    expect(e.message).toMatch(/certificate|TLS|issuer/i);

    await configMap("rotating-ca", bao.caPem);
    const got = await eventually(
      async () => resolver.resolve(TENANT, { provider: "vca-rotating", name: "hook" }).catch(() => undefined),
      "the resolver to trust the CA now in the ConfigMap",
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    expect(got.version).toBe(1);
    expect(logLines.join("")).toContain("the CA bundle changed");
    expect(await resolver.checkProvider(providers.get("vca-rotating")!)).toMatchObject({ ready: true });
  });

  it("a missing ConfigMap: the provider's Ready says InvalidConfig; Connectors keep the CA last read, and CaBundleUnavailable when none was", async () => {
    // Never there: nothing was ever read.
    const p = await applyProvider("vca-missing", { kind: "ConfigMap", name: "missing-ca" });
    const check = await resolver.checkProvider(p);
    expect(check).toMatchObject({ ready: false, reason: "InvalidConfig" });
    expect(check.message).toContain(`ConfigMap ${CTL_NS}/missing-ca`);
    const e = await caught(resolver.resolve(TENANT, { provider: "vca-missing", name: "hook" }));
    expect(e).toMatchObject({ errorClass: "transient", reason: "CaBundleUnavailable" });
    // A key that is not there.
    const wrongKey = await applyProvider("vca-wrong-key", {
      kind: "ConfigMap",
      name: "vault-ca",
      key: "nope.crt",
    });
    expect((await resolver.checkProvider(wrongKey)).message).toContain('has no key "nope.crt"');
    // Read once, then deleted: the last CA read keeps serving; the provider says what is wrong.
    expect((await resolver.resolve(TENANT, { provider: "vca-configmap", name: "hook" })).version).toBe(1);
    await kubectlOk(cp, ["delete", "configmap", "vault-ca", "-n", CTL_NS]);
    await sleep(REFRESH_MS + 200);
    expect((await resolver.resolve(TENANT, { provider: "vca-configmap", name: "hook" })).version).toBe(1);
    expect(logLines.join("")).toContain("the last one read stays in use");
    // The SecretProvider reconciler writes that to the provider's status.
    const reconcile = secretProviderReconciler({
      checker: resolver,
      writer: new KubeSecretProviderStatusWriter(
        (() => {
          const kc = new KubeConfig();
          kc.loadFromFile(cp.kubeconfigPath);
          return kc;
        })(),
      ),
      clock: systemClock,
    });
    await reconcile("vca-configmap", providers.get("vca-configmap"), AbortSignal.timeout(30_000));
    const out = await kubectlOk(cp, ["get", "sp", "vca-configmap", "-o", "wide"]);
    expect(out).toMatch(/vault\s+https:\/\/127\.0\.0\.1:\d+\s+False\s+InvalidConfig/);
    expect(out).toContain("ConfigMap");
  });

  it("through the running controller: a Connector whose provider names its CA by caBundleRef goes active", async () => {
    [db, target] = await Promise.all([startPostgres(), startBearerTarget()]);
    await applyCatalog(cp);
    const token = "vca-bearer-token";
    target.accepted.add(token);
    await bao.writeKv2(`connectors/${TENANT}/web`, { token });
    running = await startTestController(cp, db.url, ["--leader-election-namespace", CTL_NS]);
    const c = httpConnector(TENANT, "web", target.url);
    c.spec.config = {
      baseUrl: `${target.url}/c/${TENANT}/web`,
      healthPath: "/health",
      method: "POST",
      auth: { scheme: "bearer" },
      timeoutMs: 5000,
    };
    c.spec.credentials = { mode: "secretRef", secretRef: { provider: "vca-secret", name: "web" } };
    await apply(cp, c);
    await waitConnector(
      cp,
      TENANT,
      "web",
      (x) => x.status?.state === "active" && condition(x, "Ready")?.status === "True",
      "active through the CA from the Secret",
      60_000,
    );
    expect(target.tokensAt(`/c/${TENANT}/web/health`)).toContain(token);
    const sp = await eventually(
      async () => {
        const out = await kubectlOk(cp, ["get", "sp", "vca-secret"]);
        return /True\s+Ready/.test(out) ? out : undefined;
      },
      "the controller's own check of the provider to say Ready",
      60_000,
    );
    expect(sp).toContain("vca-secret");
  });

  it("the API server refuses a provider with both caBundle and caBundleRef", async () => {
    const r = await cp.kubectl(["apply", "-f", "-"], {
      input: yaml.dump({
        apiVersion: "cynodeai.io/v1alpha1",
        kind: "SecretProvider",
        metadata: { name: "vca-both" },
        spec: {
          vault: {
            address: bao.address,
            caBundle: bao.caPem,
            caBundleRef: { kind: "ConfigMap", name: "vault-ca" },
            kv: { mount: "kv" },
            auth: { kubernetes: { role: "x", serviceAccountName: "vault-reader" } },
          },
        },
      }),
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("set at most one of caBundle and caBundleRef");
  });
});
