// 6. Vault load: a cold start of N http Connectors whose bearer tokens live in a real
// Vault-API server (test/support/openbao.ts: Kubernetes auth against the test API server,
// a file audit device), 20 tenants (one per namespace, each with its own Vault role and
// policy, logging in as its own service account), a few secrets per tenant shared by many
// Connectors. Counted from the Vault server's audit log: logins and KV reads; from the API
// server: TokenRequests. The ideal is one login per tenant and one read per distinct secret.
import { randomBytes } from "node:crypto";
import type { Connector } from "../../controller/src/api/types.ts";
import { startBearerTarget, type BearerTarget } from "../../test/support/bearerTarget.ts";
import { apply } from "../../test/support/cluster.ts";
import type { ControlPlane } from "../../test/support/controlPlane.ts";
import { startOpenBao, type AuditEntry, type OpenBao } from "../../test/support/openbao.ts";
import { benchConnector, namespaceOf, NAMESPACES } from "./kube.ts";
import { coldStart, type ColdStart, type Env } from "./scenarios.ts";

export const PROVIDER = "bench-vault";

export interface VaultLoad {
  n: number;
  concurrency: number;
  /** Namespaces with Connectors (each its own Vault identity). */
  tenants: number;
  secretsPerTenant: number;
  /** Secrets the N Connectors reference (the ideal number of reads). */
  distinctSecrets: number;
  /** Successful Kubernetes-auth logins during the cold start (audit log). */
  logins: number;
  /** KV reads of the tenants' secrets during the cold start (audit log). */
  reads: number;
  /** Failed Vault requests (audit responses with an error). */
  vaultErrors: number;
  /** TokenRequests (serviceaccounts/token) the controller made for the tenants' identities. */
  tokenRequests: number;
  vaultServer: string;
  coldStart: ColdStart;
}

export interface VaultEnv {
  bao: OpenBao;
  target: BearerTarget;
  stop(): Promise<void>;
}

/** The server, the tenants, their shared secrets and the SecretProvider. */
export async function prepareVault(cp: ControlPlane, secretsPerTenant: number): Promise<VaultEnv> {
  const [bao, target] = await Promise.all([startOpenBao(cp), startBearerTarget()]);
  try {
    for (let t = 0; t < NAMESPACES; t++) {
      const ns = namespaceOf(t);
      await bao.tenant(cp, ns);
      for (let k = 0; k < secretsPerTenant; k++) {
        const token = `bench-${randomBytes(12).toString("hex")}`;
        target.accepted.add(token);
        await bao.writeKv2(`connectors/${ns}/shared-${k}`, { token });
      }
    }
    await apply(cp, {
      apiVersion: "cynodeai.io/v1alpha1",
      kind: "SecretProvider",
      metadata: { name: PROVIDER },
      spec: {
        vault: {
          address: bao.address,
          caBundle: bao.caPem,
          kv: { mount: "kv", version: 2 },
          auth: { kubernetes: { role: "{namespace}", serviceAccountName: "vault-reader" } },
        },
      },
    });
  } catch (err) {
    await Promise.all([bao.stop(), target.stop()]);
    throw err;
  }
  return { bao, target, stop: async () => void (await Promise.all([bao.stop(), target.stop()])) };
}

/** Connector i: a bearer-auth http Connector whose token is its tenant's shared-(i mod k) secret. */
export function vaultConnector(i: number, target: BearerTarget, secretsPerTenant: number): Connector {
  const c = benchConnector(i, target.url);
  c.spec.config = {
    baseUrl: target.url,
    healthPath: "/health",
    method: "POST",
    auth: { scheme: "bearer" },
    timeoutMs: 5000,
  };
  c.spec.credentials = {
    mode: "secretRef",
    secretRef: { provider: PROVIDER, name: `shared-${Math.floor(i / NAMESPACES) % secretsPerTenant}` },
  };
  return c;
}

const isLogin = (e: AuditEntry) =>
  e.type === "response" && e.request?.path === "auth/kubernetes/login" && !e.error;
const isRead = (e: AuditEntry) =>
  e.type === "response" &&
  e.request?.operation === "read" &&
  /^kv\/data\/connectors\//.test(e.request?.path ?? "");

export async function vaultLoad(
  env: Env,
  vault: VaultEnv,
  concurrency: number,
  secretsPerTenant: number,
): Promise<VaultLoad> {
  const before = vault.bao.audit().length;
  const cold = await coldStart(env, concurrency, false);
  const entries = vault.bao.audit().slice(before);
  const used = new Set<string>();
  const tenants = new Set<string>();
  for (let i = 0; i < env.n; i++) {
    const c = vaultConnector(i, vault.target, secretsPerTenant);
    tenants.add(c.metadata.namespace!);
    used.add(`${c.metadata.namespace}/${c.spec.credentials!.secretRef!.name}`);
  }
  return {
    n: env.n,
    concurrency,
    tenants: tenants.size,
    secretsPerTenant,
    distinctSecrets: used.size,
    logins: entries.filter(isLogin).length,
    reads: entries.filter(isRead).length,
    vaultErrors: entries.filter((e) => e.type === "response" && e.error).length,
    tokenRequests: cold.apiRequests["serviceaccounts/token POST"] ?? 0,
    vaultServer: `${vault.bao.flavor} ${vault.bao.version}`,
    coldStart: cold,
  };
}
