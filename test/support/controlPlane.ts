// A real Kubernetes control plane for the integration tests: etcd and kube-apiserver,
// started the way controller-runtime's envtest starts them (loopback only, random free
// ports, a throwaway CA, RBAC, service-account token signing), with an admin kubeconfig
// (O=system:masters) and the project's CRDs installed and Established.
//
// The binaries come from hack/testbin.sh (built once from the Go module proxy and cached,
// or taken from KUBEBUILDER_ASSETS). Nothing is ever skipped: if they cannot be had,
// startControlPlane throws saying what is missing and how to provide it.
//
// Manual use:  node test/support/controlPlane.ts   (prints the kubeconfig path, stays up
// until SIGINT/SIGTERM).
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as https from "node:https";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { projectRoot } from "../../controller/src/api/paths.ts";
import { freePorts } from "./net.ts";
import { createTestCa, rsaSigningKeys } from "./pki.ts";
import { runCommand, startProcess, type CommandResult, type TestProcess } from "./process.ts";
import { testbinDir } from "./testbin.ts";
import { eventually } from "./wait.ts";

export const REPO_ROOT = projectRoot;

export type KubectlResult = CommandResult;

export interface ControlPlane {
  /** Admin kubeconfig (client certificate with O=system:masters). */
  kubeconfigPath: string;
  /** https://127.0.0.1:<port> */
  server: string;
  /** Directory holding kube-apiserver, kubectl and etcd. */
  binDir: string;
  /** Temp dir with the certificates, etcd data and (unless logDir was given) the logs. */
  dir: string;
  logDir: string;
  etcdUrl: string;
  /** PEM of the throwaway CA that signed the serving and client certificates. */
  caPem: string;
  /** The admin client certificate and key (PEM), as in the kubeconfig. */
  clientCertPem: string;
  clientKeyPem: string;
  /** --service-account-issuer, and the public key that verifies service-account tokens. */
  serviceAccountIssuer: string;
  serviceAccountPublicKeyPem: string;
  /** Runs the cluster's kubectl with the admin kubeconfig. Never throws on a non-zero exit. */
  kubectl(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<KubectlResult>;
  /** Kills kube-apiserver and starts it again on the same port with the same certs and etcd. */
  restartApiServer(): Promise<void>;
  /** Stops both processes and removes the temp dir. Safe to call more than once. */
  stop(): Promise<void>;
}

export interface ControlPlaneOptions {
  /** CRDs to install (kubectl apply -R); default <repo>/crds. Skipped when it holds no yaml. */
  crdDir?: string;
  /** Where the etcd/kube-apiserver logs go; default the temp dir (removed on stop). */
  logDir?: string;
  /** Extra kube-apiserver flags, e.g. ["--feature-gates=..."]. */
  apiServerArgs?: string[];
  /** How long to wait for each process to become healthy (default 60s). */
  startTimeoutMs?: number;
}

// A detached watchdog that kills the processes listed in <dir>/pids and removes <dir> when
// this Node process dies without running its exit hooks (SIGKILL, crash of a test worker).
// It exits by itself once <dir> is gone (normal stop).
const WATCHDOG = `
const fs = require("node:fs");
const [parent, dir] = process.argv.slice(1);
const alive = (pid) => { try { process.kill(pid, 0); return true; } catch (e) { return e.code === "EPERM"; } };
setInterval(() => {
  if (!fs.existsSync(dir)) process.exit(0);
  if (alive(Number(parent))) return;
  let pids = [];
  try { pids = JSON.parse(fs.readFileSync(dir + "/pids", "utf8")); } catch {}
  for (const pid of pids) { try { process.kill(pid, "SIGKILL"); } catch {} }
  setTimeout(() => { fs.rmSync(dir, { recursive: true, force: true }); process.exit(0); }, 500);
}, 1000);
`;

/** hack/testbin.sh (which respects KUBEBUILDER_ASSETS): the directory of kube-apiserver, kubectl and etcd. */
export function resolveBinDir(): Promise<string> {
  return testbinDir("kube", ["kube-apiserver", "kubectl", "etcd"]);
}

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const binDir = await resolveBinDir();
  const startTimeoutMs = opts.startTimeoutMs ?? 60_000;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "connector-controller-cp-"));
  const logDir = opts.logDir ? path.resolve(opts.logDir) : dir;
  fs.mkdirSync(logDir, { recursive: true });
  const file = (name: string): string => path.join(dir, name);

  // In start order: stopped in reverse, kube-apiserver before etcd (an API server whose etcd
  // is gone hangs in its graceful shutdown).
  const procs: TestProcess[] = [];
  const writePids = (): void => {
    const pids = procs.filter((p) => p.running).map((p) => p.child.pid);
    try {
      fs.writeFileSync(file("pids"), JSON.stringify(pids));
    } catch {
      // dir already removed
    }
  };
  const start = (name: string, args: string[]): TestProcess => {
    const p = startProcess(name, path.join(binDir, name), args, {
      logFile: path.join(logDir, `${name}.log`),
    });
    procs.push(p);
    writePids();
    return p;
  };
  const removeDir = (): void => fs.rmSync(dir, { recursive: true, force: true });
  process.on("exit", removeDir);
  const watchdog = spawn(process.execPath, ["-e", WATCHDOG, String(process.pid), dir], {
    detached: true,
    stdio: "ignore",
  });
  watchdog.unref();

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    for (const p of [...procs].reverse()) await p.stop();
    process.removeListener("exit", removeDir);
    removeDir();
  };

  try {
    const ca = await createTestCa("connector-controller-test-ca");
    const serving = await ca.issueServerCert({
      cn: "kube-apiserver",
      ips: ["127.0.0.1", "10.0.0.1"],
      dns: ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
    });
    const client = await ca.issueClientCert("CN=admin, O=system:masters");
    const sa = await rsaSigningKeys();
    const write = (name: string, content: string): string => {
      fs.writeFileSync(file(name), content, { mode: 0o600 });
      return file(name);
    };
    write("ca.crt", ca.caPem);
    write("apiserver.crt", serving.certPem);
    write("apiserver.key", serving.keyPem);
    write("sa.pub", sa.publicKeyPem);
    write("sa.key", sa.privateKeyPem);

    // --- etcd ---------------------------------------------------------------------------
    const [etcdPort, etcdPeerPort, apiPort] = (await freePorts(3)) as [number, number, number];
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    const etcd = start("etcd", [
      `--name=default`,
      `--data-dir=${file("etcd")}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=default=${peerUrl}`,
      `--unsafe-no-fsync=true`,
      `--log-level=warn`,
    ]);
    await healthy(etcd, startTimeoutMs, async () => {
      const r = await httpGet(`${etcdUrl}/health`);
      return r.status === 200 && r.body.includes('"health":"true"');
    });

    // --- kube-apiserver -----------------------------------------------------------------
    const server = `https://127.0.0.1:${apiPort}`;
    const serviceAccountIssuer = `${server}/`;
    const apiArgs = [
      `--advertise-address=127.0.0.1`,
      `--bind-address=127.0.0.1`,
      `--secure-port=${apiPort}`,
      `--etcd-servers=${etcdUrl}`,
      `--cert-dir=${file("apiserver-certs")}`,
      `--tls-cert-file=${file("apiserver.crt")}`,
      `--tls-private-key-file=${file("apiserver.key")}`,
      `--client-ca-file=${file("ca.crt")}`,
      `--authorization-mode=RBAC`,
      `--service-account-issuer=${serviceAccountIssuer}`,
      `--service-account-key-file=${file("sa.pub")}`,
      `--service-account-signing-key-file=${file("sa.key")}`,
      `--service-cluster-ip-range=10.0.0.0/24`,
      `--allow-privileged=true`,
      `--disable-admission-plugins=ServiceAccount`,
      `--v=1`,
      ...(opts.apiServerArgs ?? []),
    ];
    const tls = { ca: ca.caPem, cert: client.certPem, key: client.keyPem };
    const startApiServer = async (): Promise<TestProcess> => {
      const p = start("kube-apiserver", apiArgs);
      await healthy(p, startTimeoutMs, async () => (await httpsGet(`${server}/readyz`, tls)).status === 200);
      return p;
    };
    let apiserver = await startApiServer();

    // --- kubeconfig ---------------------------------------------------------------------
    const b64 = (s: string): string => Buffer.from(s).toString("base64");
    const kubeconfigPath = write(
      "kubeconfig",
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        "  - name: test",
        "    cluster:",
        `      server: ${server}`,
        `      certificate-authority-data: ${b64(ca.caPem)}`,
        "users:",
        "  - name: admin",
        "    user:",
        `      client-certificate-data: ${b64(client.certPem)}`,
        `      client-key-data: ${b64(client.keyPem)}`,
        "contexts:",
        "  - name: test",
        "    context:",
        "      cluster: test",
        "      user: admin",
        "      namespace: default",
        "current-context: test",
        "",
      ].join("\n"),
    );

    const kubectl = (
      args: string[],
      o: { input?: string; timeoutMs?: number } = {},
    ): Promise<KubectlResult> =>
      runCommand(
        path.join(binDir, "kubectl"),
        [`--kubeconfig=${kubeconfigPath}`, `--cache-dir=${file("kubectl-cache")}`, ...args],
        { ...(o.input !== undefined ? { input: o.input } : {}), timeoutMs: o.timeoutMs ?? 60_000 },
      );

    await installCrds(kubectl, path.resolve(opts.crdDir ?? path.join(projectRoot, "crds")));

    return {
      kubeconfigPath,
      server,
      binDir,
      dir,
      logDir,
      etcdUrl,
      caPem: ca.caPem,
      clientCertPem: client.certPem,
      clientKeyPem: client.keyPem,
      serviceAccountIssuer,
      serviceAccountPublicKeyPem: sa.publicKeyPem,
      kubectl,
      async restartApiServer(): Promise<void> {
        if (stopped) throw new Error("the control plane is stopped");
        await apiserver.stop();
        procs.splice(procs.indexOf(apiserver), 1);
        // The port is ours: the old process has exited, and Go sets SO_REUSEADDR.
        apiserver = await startApiServer();
      },
      stop,
    };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    await stop().catch(() => undefined);
    throw new Error(`starting the test control plane failed: ${message}`, { cause: err });
  }
}

/** Applies the CRDs in `crdDir` (when it holds any) and waits until they are Established. */
async function installCrds(
  kubectl: (args: string[]) => Promise<KubectlResult>,
  crdDir: string,
): Promise<void> {
  if (!hasYaml(crdDir)) return;
  const applied = await kubectl([
    "apply",
    "--server-side",
    "--force-conflicts",
    "-R",
    "-f",
    crdDir,
    "-o",
    "name",
  ]);
  if (applied.code !== 0)
    throw new Error(`installing the CRDs from ${crdDir} failed:\n${applied.stderr}${applied.stdout}`);
  const crds = applied.stdout
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith("customresourcedefinition"));
  if (crds.length === 0) return;
  const waited = await kubectl(["wait", "--for=condition=Established", "--timeout=60s", ...crds]);
  if (waited.code !== 0)
    throw new Error(`the CRDs from ${crdDir} did not become Established:\n${waited.stderr}${waited.stdout}`);
}

/** Until `ready` holds; fails at once, with its log, when the process exits. */
async function healthy(proc: TestProcess, timeoutMs: number, ready: () => Promise<boolean>): Promise<void> {
  try {
    await eventually(ready, `${proc.name} to be healthy`, {
      timeoutMs,
      intervalMs: 200,
      giveUpIf: () => proc.exitInfo,
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}; its log:\n${proc.tail()}`, { cause: err });
  }
}

interface HttpResult {
  status: number;
  body: string;
}

function collect(req: http.ClientRequest): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.setTimeout(5000, () => req.destroy(new Error("timeout")));
    req.end();
  });
}

function httpGet(url: string): Promise<HttpResult> {
  return collect(http.request(url, { method: "GET", agent: false }));
}

function httpsGet(url: string, tls: { ca: string; cert: string; key: string }): Promise<HttpResult> {
  return collect(https.request(url, { method: "GET", agent: false, ...tls }));
}

function hasYaml(dir: string): boolean {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true, recursive: true });
  } catch {
    return false;
  }
  return entries.some((e) => e.isFile() && /\.ya?ml$/.test(e.name));
}

// ---------------------------------------------------------------------------------------
// node test/support/controlPlane.ts
// ---------------------------------------------------------------------------------------
export async function main(): Promise<void> {
  const cp = await startControlPlane({ logDir: process.env.CONTROL_PLANE_LOG_DIR });
  console.log(`kube-apiserver ${cp.server} (logs in ${cp.logDir})`);
  console.log(`export KUBECONFIG=${cp.kubeconfigPath}`);
  console.log(cp.kubeconfigPath);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await cp.stop();
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
