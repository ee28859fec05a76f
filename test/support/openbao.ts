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
import { spawn, type ChildProcess } from "node:child_process";
import { webcrypto } from "node:crypto";
import { once } from "node:events";
import * as fs from "node:fs";
import * as https from "node:https";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import * as x509 from "@peculiar/x509";
import { REPO_ROOT, startControlPlane, type ControlPlane } from "./controlPlane.ts";

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

/** Runs hack/testbin.sh openbao and returns the server binary (bao, or vault as the fallback). */
export async function resolveVaultServerBinary(): Promise<{ binary: string; flavor: "openbao" | "vault" }> {
  const script = path.join(REPO_ROOT, "hack", "testbin.sh");
  const res = await run("bash", [script, "openbao"], { stderrTo: process.stderr, timeoutMs: 3_600_000 });
  const dir = res.stdout.trim().split("\n").pop()?.trim() ?? "";
  if (res.code !== 0 || !dir)
    throw new Error(
      `the Vault-API test server is not available: hack/testbin.sh openbao exited ${res.code}:\n${tail(res.stderr, 30)}\n` +
        "Run `hack/testbin.sh openbao` (builds it from the Go module proxy; needs Go >= 1.26) " +
        "or set OPENBAO_BIN to a bao or vault binary.",
    );
  for (const [name, flavor] of [
    ["bao", "openbao"],
    ["vault", "vault"],
  ] as const) {
    const p = path.join(dir, name);
    if (fs.existsSync(p)) return { binary: p, flavor };
  }
  throw new Error(`hack/testbin.sh openbao printed ${dir}, which holds neither bao nor vault`);
}

// ---------------------------------------------------------------------------------------
// startOpenBao
// ---------------------------------------------------------------------------------------

const live = new Set<() => void>();
let hooks = false;
function installExitHooks(): void {
  if (hooks) return;
  hooks = true;
  process.on("exit", () => {
    for (const k of live) k();
  });
}

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
  const pki = await makePki();
  fs.writeFileSync(file("ca.pem"), pki.caPem);
  fs.writeFileSync(file("server.pem"), pki.certPem);
  fs.writeFileSync(file("server-key.pem"), pki.keyPem, { mode: 0o600 });
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

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let exitInfo: string | undefined;
  let stopped = false;
  const killSync = (): void => {
    if (child && exitInfo === undefined) child.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
  };
  installExitHooks();
  live.add(killSync);

  const startProcess = (): void => {
    const fd = fs.openSync(logPath, "a");
    try {
      exitInfo = undefined;
      const c = spawn(binary, ["server", `-config=${file("server.hcl")}`], {
        stdio: ["ignore", fd, fd],
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          HOME: dir,
          SKIP_SETCAP: "1",
          VAULT_DISABLE_MLOCK: "true",
        },
      });
      child = c;
      exited = new Promise((resolve) => {
        c.once("exit", (code, signal) => {
          exitInfo = signal ? `killed by ${signal}` : `exited with code ${code}`;
          resolve();
        });
        c.once("error", (err) => {
          exitInfo = `failed to start: ${err.message}`;
          resolve();
        });
      });
    } finally {
      fs.closeSync(fd);
    }
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
        { method, headers, ca: pki.caPem, agent: false, timeout: 15_000 },
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
    const deadline = Date.now() + startTimeoutMs;
    let last = "";
    for (;;) {
      if (exitInfo !== undefined)
        throw new Error(`the server ${exitInfo}; log ${logPath}:\n${logTail(logPath)}`);
      try {
        const r = await request("GET", "sys/seal-status", undefined, null);
        if (r.status === 200) return;
        last = `status ${r.status}`;
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() > deadline)
        throw new Error(
          `the server did not answer within ${startTimeoutMs} ms (${last}); log:\n${logTail(logPath)}`,
        );
      await sleep(150);
    }
  };

  let unsealKey = "";
  const unseal = async (): Promise<void> => {
    const r = await call("PUT", "sys/unseal", { key: unsealKey }, null);
    if (r?.sealed !== false) throw new Error(`unseal did not unseal: ${JSON.stringify(r)}`);
    // Wait until the active node serves requests (mounts loaded).
    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      const h = await request("GET", "sys/health", undefined, null);
      if (h.status === 200) return;
      if (Date.now() > deadline) throw new Error(`not active after unseal: ${h.status}`);
      await sleep(100);
    }
  };

  const stopProcess = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    if (!c || exitInfo !== undefined) return;
    c.kill(signal);
    const t = setTimeout(() => c.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(t);
  };

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await stopProcess("SIGTERM");
    live.delete(killSync);
    fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
    startProcess();
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
    await waitFor(async () => (await request("GET", `${KV2_MOUNT}/config`)).status === 200, startTimeoutMs);

    // --- Kubernetes auth against the test kube-apiserver (real TokenReview) --------------
    await kubectlOk(cp, ["create", "namespace", REVIEWER_NAMESPACE], true);
    await kubectlOk(cp, ["create", "serviceaccount", REVIEWER_SA, "-n", REVIEWER_NAMESPACE], true);
    await kubectlOk(
      cp,
      [
        "create",
        "clusterrolebinding",
        "connector-controller-test-token-reviewer",
        "--clusterrole=system:auth-delegator",
        `--serviceaccount=${REVIEWER_NAMESPACE}:${REVIEWER_SA}`,
      ],
      true,
    );
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
        await kubectlOk(cluster, ["create", "namespace", namespace], true);
        await kubectlOk(cluster, ["create", "serviceaccount", sa, "-n", namespace], true);
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
      caPem: pki.caPem,
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
        await stopProcess("SIGTERM");
        startProcess();
        await waitListening();
        await unseal();
      },
      async kill() {
        await stopProcess("SIGKILL");
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
// helpers
// ---------------------------------------------------------------------------------------

async function kubectlOk(cp: ControlPlane, args: string[], allowExists = false): Promise<string> {
  const r = await cp.kubectl(args);
  if (r.code !== 0) {
    if (allowExists && /AlreadyExists|already exists/.test(r.stderr)) return r.stdout;
    throw new Error(`kubectl ${args.join(" ")} failed: ${r.stderr || r.stdout}`);
  }
  return r.stdout;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error("timed out");
    await sleep(100);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function makePki(): Promise<{ caPem: string; certPem: string; keyPem: string }> {
  x509.cryptoProvider.set(webcrypto);
  const subtle = webcrypto.subtle;
  const alg = { name: "ECDSA", namedCurve: "P-256" } as const;
  const sign = { name: "ECDSA", hash: "SHA-256" } as const;
  const notBefore = new Date(Date.now() - 3_600_000);
  const notAfter = new Date(Date.now() + 7 * 86_400_000);
  const caKeys = (await subtle.generateKey(alg, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    name: "CN=connector-controller-test-vault-ca",
    keys: caKeys,
    notBefore,
    notAfter,
    signingAlgorithm: sign,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const keys = (await subtle.generateKey(alg, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    subject: "CN=vault",
    issuer: ca.subject,
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    notBefore,
    notAfter,
    signingAlgorithm: sign,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
      new x509.SubjectAlternativeNameExtension([
        { type: "ip", value: "127.0.0.1" },
        { type: "dns", value: "localhost" },
      ]),
    ],
  });
  const keyPem = x509.PemConverter.encode(await subtle.exportKey("pkcs8", keys.privateKey), "PRIVATE KEY");
  return { caPem: ca.toString("pem"), certPem: cert.toString("pem"), keyPem };
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, "127.0.0.1");
  await once(s, "listening");
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function run(
  cmd: string,
  args: string[],
  o: { timeoutMs?: number; stderrTo?: NodeJS.WritableStream } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => {
      stderr += c;
      o.stderrTo?.write(c);
    });
    const timer = o.timeoutMs ? setTimeout(() => child.kill("SIGKILL"), o.timeoutMs) : undefined;
    child.on("error", (err) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: `${stderr}${cmd}: ${err.message}\n` });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

function logTail(p: string, lines = 30): string {
  try {
    return tail(fs.readFileSync(p, "utf8"), lines);
  } catch {
    return "(no log)";
  }
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
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
