// A real Vault-API server for the integration tests (OpenBao, or HashiCorp Vault 1.14.1 —
// the MPL-2.0 release OpenBao forked from — when the module proxy does not serve OpenBao; see
// hack/testbin.sh openbao). It runs as a real server, not `-dev`: file storage in a temp dir
// (so restart() keeps secrets and tokens), TLS with a throwaway CA on a random loopback port,
// initialised with one unseal key that the harness keeps, so seal()/unseal() and restart()
// work like in production. A root token with a known id (ROOT_TOKEN) is created.
//
// Configured for the tests: KV v2 at `kv`, KV v1 at `kv1`, a file audit device (audit.log in
// the temp dir; values are HMAC'd by the server), and Kubernetes auth at `kubernetes` against
// the test kube-apiserver, whose TokenReview is real (a reviewer service account bound to
// system:auth-delegator). tenant() creates, per test namespace, a policy that can read only
// that namespace's paths and a role bound to a service account of that namespace.
//
// Manual use:  node test/support/openbao.ts   (starts a control plane and the server, prints
// how to reach them, stays up until SIGINT/SIGTERM).
import * as fs from "node:fs";
import * as https from "node:https";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { createIfAbsent, kubectlOk } from "./cluster.ts";
import { startControlPlane, type ControlPlane } from "./controlPlane.ts";
import { freePort } from "./net.ts";
import { createTestCa } from "./pki.ts";
import { startProcess, type TestProcess } from "./process.ts";
import { testbinDir } from "./testbin.ts";
import { eventually } from "./wait.ts";

export const ROOT_TOKEN = "root-token-for-tests";
export const KV2_MOUNT = "kv";
export const KV1_MOUNT = "kv1";
export const K8S_AUTH_MOUNT = "kubernetes";
const REVIEWER_NAMESPACE = "vault-auth";
const REVIEWER_SA = "token-reviewer";

export interface VaultResponse {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export interface AuditEntry {
  type: "request" | "response";
  time?: string;
  error?: string;
  auth?: { display_name?: string; policies?: string[]; accessor?: string };
  request?: { id?: string; operation?: string; path?: string; mount_type?: string };
  response?: { auth?: { accessor?: string } };
}

export interface TenantOptions {
  /** Role name (default: the namespace). */
  role?: string;
  /** The service account the role is bound to (default vault-reader). */
  serviceAccount?: string;
  /** token_ttl / token_max_ttl in seconds (defaults 3600 / 7200). */
  tokenTtl?: number;
  tokenMaxTtl?: number;
  /** Create the namespace and the service account in the cluster too (default true). */
  createServiceAccount?: boolean;
}

export interface OpenBao {
  /** https://127.0.0.1:<port> */
  address: string;
  /** PEM of the CA that signed the server's certificate. */
  caPem: string;
  rootToken: string;
  /** "openbao" or "vault" (which binary runs). */
  flavor: "openbao" | "vault";
  binary: string;
  version: string;
  dir: string;
  auditLogPath: string;
  logPath: string;
  /** A request to the HTTP API (root token unless another is given). Never throws on a status. */
  request(method: string, apiPath: string, body?: unknown, token?: string | null): Promise<VaultResponse>;
  /** Like request, but throws unless 2xx. */
  call(method: string, apiPath: string, body?: unknown, token?: string | null): Promise<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Writes a KV v2 secret (returns its new version) at kv/<p>. */
  writeKv2(p: string, data: Record<string, unknown>): Promise<number>;
  /** Writes a KV v1 secret at kv1/<p>. */
  writeKv1(p: string, data: Record<string, unknown>): Promise<void>;
  /** Soft-deletes KV v2 versions (all latest when none given). */
  deleteKv2(p: string, versions?: number[]): Promise<void>;
  destroyKv2(p: string, versions: number[]): Promise<void>;
  /** A policy reading connectors/<ns>/* in kv and kv1, and a Kubernetes role bound to <ns>/<sa>. */
  tenant(
    cp: ControlPlane,
    namespace: string,
    opts?: TenantOptions,
  ): Promise<{ role: string; policy: string }>;
  seal(): Promise<void>;
  unseal(): Promise<void>;
  sealed(): Promise<boolean>;
  /** SIGTERM, then start again on the same port and unseal. */
  restart(): Promise<void>;
  /** SIGKILL (the server stays down until restart()). */
  kill(): Promise<void>;
  /** Parsed audit log entries. */
  audit(): AuditEntry[];
  /** Counts audit entries (responses by default) matching path / operation. */
  countAudit(filter: { path?: string | RegExp; operation?: string; type?: "request" | "response" }): number;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------
// Binary
// ---------------------------------------------------------------------------------------

/** hack/testbin.sh openbao: the server binary (bao, or vault as the fallback). */
export async function resolveVaultServerBinary(): Promise<{ binary: string; flavor: "openbao" | "vault" }> {
  const dir = await testbinDir("openbao", ["bao", "vault"], { anyOf: true });
  const bao = path.join(dir, "bao");
  return fs.existsSync(bao)
    ? { binary: bao, flavor: "openbao" }
    : { binary: path.join(dir, "vault"), flavor: "vault" };
}

// ---------------------------------------------------------------------------------------
// startOpenBao
// ---------------------------------------------------------------------------------------

export async function startOpenBao(
  cp: ControlPlane,
  opts: { binary?: string; startTimeoutMs?: number } = {},
): Promise<OpenBao> {
  const envBin = opts.binary ?? process.env.OPENBAO_BIN;
  const { binary, flavor } = envBin
    ? {
        binary: envBin,
        flavor: path.basename(envBin).startsWith("bao") ? ("openbao" as const) : ("vault" as const),
      }
    : await resolveVaultServerBinary();
  const startTimeoutMs = opts.startTimeoutMs ?? 60_000;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "connector-controller-bao-"));
  const file = (n: string): string => path.join(dir, n);
  const port = await freePort();
  const address = `https://127.0.0.1:${port}`;
  const ca = await createTestCa("connector-controller-test-vault-ca");
  const cert = await ca.issueServerCert({ cn: "vault" });
  fs.writeFileSync(file("ca.pem"), ca.caPem);
  fs.writeFileSync(file("server.pem"), cert.certPem);
  fs.writeFileSync(file("server-key.pem"), cert.keyPem, { mode: 0o600 });
  fs.mkdirSync(file("data"));
  fs.writeFileSync(
    file("server.hcl"),
    [
      `storage "file" { path = "${file("data")}" }`,
      `listener "tcp" {`,
      `  address = "127.0.0.1:${port}"`,
      `  tls_cert_file = "${file("server.pem")}"`,
      `  tls_key_file = "${file("server-key.pem")}"`,
      `}`,
      `api_addr = "${address}"`,
      `disable_mlock = true`,
      `ui = false`,
      `log_level = "info"`,
      "",
    ].join("\n"),
  );
  const logPath = file("server.log");
  const auditLogPath = file("audit.log");

  let server: TestProcess | undefined;
  let stopped = false;
  const removeDir = (): void => fs.rmSync(dir, { recursive: true, force: true });
  process.on("exit", removeDir);

  const startServer = (): void => {
    server = startProcess(flavor, binary, ["server", `-config=${file("server.hcl")}`], {
      logFile: logPath,
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: dir,
        SKIP_SETCAP: "1",
        VAULT_DISABLE_MLOCK: "true",
      },
    });
  };

  const request = async (
    method: string,
    apiPath: string,
    body?: unknown,
    token: string | null = ROOT_TOKEN,
  ): Promise<VaultResponse> => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = {};
    if (token) headers["X-Vault-Token"] = token;
    if (payload) {
      headers["Content-Type"] = "application/json";
      headers["Content-Length"] = String(payload.length);
    }
    return new Promise((resolve, reject) => {
      const req = https.request(
        `${address}/v1/${apiPath.replace(/^\//, "")}`,
        { method, headers, ca: ca.caPem, agent: false, timeout: 15_000 },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (text += c));
          res.on("end", () => {
            let parsed: unknown = undefined;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              parsed = text;
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", reject);
      req.end(payload);
    });
  };
  const call = async (method: string, apiPath: string, body?: unknown, token: string | null = ROOT_TOKEN) => {
    const r = await request(method, apiPath, body, token);
    if (r.status < 200 || r.status > 299)
      throw new Error(`${method} ${apiPath}: ${r.status} ${JSON.stringify(r.body?.errors ?? r.body)}`);
    return r.body;
  };

  const waitListening = async (): Promise<void> => {
    try {
      await eventually(
        async () => (await request("GET", "sys/seal-status", undefined, null)).status === 200,
        "the server to answer",
        { timeoutMs: startTimeoutMs, intervalMs: 150, giveUpIf: () => server?.exitInfo },
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}; log ${logPath}:\n${server?.tail(30)}`, { cause: err });
    }
  };

  let unsealKey = "";
  const unseal = async (): Promise<void> => {
    const r = await call("PUT", "sys/unseal", { key: unsealKey }, null);
    if (r?.sealed !== false) throw new Error(`unseal did not unseal: ${JSON.stringify(r)}`);
    await eventually(
      async () => (await request("GET", "sys/health", undefined, null)).status === 200,
      "the server to be active after unseal (mounts loaded)",
      startTimeoutMs,
    );
  };

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await server?.stop();
    process.removeListener("exit", removeDir);
    removeDir();
  };

  try {
    startServer();
    await waitListening();
    const init = await call("PUT", "sys/init", { secret_shares: 1, secret_threshold: 1 }, null);
    unsealKey = String(init.keys_base64?.[0] ?? init.keys?.[0] ?? "");
    const initialRoot = String(init.root_token ?? "");
    if (!unsealKey || !initialRoot) throw new Error("sys/init returned no unseal key or root token");
    await unseal();
    // A root token with a known id, then the generated one is revoked.
    await call(
      "POST",
      "auth/token/create",
      { id: ROOT_TOKEN, policies: ["root"], no_parent: true },
      initialRoot,
    );
    await call("POST", "auth/token/revoke-self", undefined, initialRoot);
    const health = await call("GET", "sys/health", undefined, null);

    await call("POST", "sys/audit/file", { type: "file", options: { file_path: auditLogPath } });
    await call("POST", `sys/mounts/${KV2_MOUNT}`, { type: "kv", options: { version: "2" } });
    await call("POST", `sys/mounts/${KV1_MOUNT}`, { type: "kv", options: { version: "1" } });
    // KV v2 upgrades its mount in the background: wait until it serves.
    await eventually(
      async () => (await request("GET", `${KV2_MOUNT}/config`)).status === 200,
      "the KV v2 mount to serve",
      startTimeoutMs,
    );

    // --- Kubernetes auth against the test kube-apiserver (real TokenReview) --------------
    await createIfAbsent(cp, ["namespace", REVIEWER_NAMESPACE]);
    await createIfAbsent(cp, ["serviceaccount", REVIEWER_SA, "-n", REVIEWER_NAMESPACE]);
    await createIfAbsent(cp, [
      "clusterrolebinding",
      "connector-controller-test-token-reviewer",
      "--clusterrole=system:auth-delegator",
      `--serviceaccount=${REVIEWER_NAMESPACE}:${REVIEWER_SA}`,
    ]);
    const reviewerJwt = (
      await kubectlOk(cp, ["create", "token", REVIEWER_SA, "-n", REVIEWER_NAMESPACE, "--duration=24h"])
    ).trim();
    await call("POST", `sys/auth/${K8S_AUTH_MOUNT}`, { type: "kubernetes" });
    await call("POST", `auth/${K8S_AUTH_MOUNT}/config`, {
      kubernetes_host: cp.server,
      kubernetes_ca_cert: cp.caPem,
      token_reviewer_jwt: reviewerJwt,
      disable_local_ca_jwt: true,
    });

    const tenant = async (
      cluster: ControlPlane,
      namespace: string,
      o: TenantOptions = {},
    ): Promise<{ role: string; policy: string }> => {
      const role = o.role ?? namespace;
      const sa = o.serviceAccount ?? "vault-reader";
      const policy = `tenant-${namespace}`;
      if (o.createServiceAccount !== false) {
        await createIfAbsent(cluster, ["namespace", namespace]);
        await createIfAbsent(cluster, ["serviceaccount", sa, "-n", namespace]);
      }
      await call("PUT", `sys/policies/acl/${policy}`, {
        policy: [
          `path "${KV2_MOUNT}/data/connectors/${namespace}/*" { capabilities = ["read"] }`,
          `path "${KV1_MOUNT}/connectors/${namespace}/*" { capabilities = ["read"] }`,
        ].join("\n"),
      });
      await call("POST", `auth/${K8S_AUTH_MOUNT}/role/${role}`, {
        bound_service_account_names: [sa],
        bound_service_account_namespaces: [namespace],
        audience: "vault",
        token_policies: [policy],
        token_ttl: o.tokenTtl ?? 3600,
        token_max_ttl: o.tokenMaxTtl ?? 7200,
      });
      return { role, policy };
    };

    const readAudit = (): AuditEntry[] => {
      let text = "";
      try {
        text = fs.readFileSync(auditLogPath, "utf8");
      } catch {
        return [];
      }
      return text
        .split("\n")
        .filter((l) => l.trim().length > 0)
        .map((l) => JSON.parse(l) as AuditEntry);
    };

    return {
      address,
      caPem: ca.caPem,
      rootToken: ROOT_TOKEN,
      flavor,
      binary,
      version: String(health.version ?? "unknown"),
      dir,
      auditLogPath,
      logPath,
      request,
      call,
      async writeKv2(p, data) {
        const r = await call("POST", `${KV2_MOUNT}/data/${p}`, { data });
        return Number(r.data.version);
      },
      async writeKv1(p, data) {
        await call("POST", `${KV1_MOUNT}/${p}`, data);
      },
      async deleteKv2(p, versions) {
        if (versions) await call("POST", `${KV2_MOUNT}/delete/${p}`, { versions });
        else await call("DELETE", `${KV2_MOUNT}/data/${p}`);
      },
      async destroyKv2(p, versions) {
        await call("PUT", `${KV2_MOUNT}/destroy/${p}`, { versions });
      },
      tenant,
      async seal() {
        await call("PUT", "sys/seal");
      },
      unseal,
      async sealed() {
        const r = await request("GET", "sys/seal-status", undefined, null);
        return r.body?.sealed === true;
      },
      async restart() {
        await server?.stop();
        startServer();
        await waitListening();
        await unseal();
      },
      async kill() {
        await server?.stop("SIGKILL");
      },
      audit: readAudit,
      countAudit(filter) {
        const type = filter.type ?? "response";
        return readAudit().filter(
          (e) =>
            e.type === type &&
            (filter.operation === undefined || e.request?.operation === filter.operation) &&
            (filter.path === undefined ||
              (typeof filter.path === "string"
                ? e.request?.path === filter.path
                : filter.path.test(e.request?.path ?? ""))),
        ).length;
      },
      stop,
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw new Error(`starting the Vault-API test server failed: ${(err as Error).message}`, { cause: err });
  }
}

// ---------------------------------------------------------------------------------------
// node test/support/openbao.ts
// ---------------------------------------------------------------------------------------
export async function main(): Promise<void> {
  const cp = await startControlPlane();
  const bao = await startOpenBao(cp);
  console.log(`kube-apiserver ${cp.server}; KUBECONFIG=${cp.kubeconfigPath}`);
  console.log(
    `${bao.flavor} ${bao.version} at ${bao.address} (CA ${path.join(bao.dir, "ca.pem")}), token ${bao.rootToken}`,
  );
  console.log(`audit log ${bao.auditLogPath}; server log ${bao.logPath}`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await bao.stop();
  await cp.stop();
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
