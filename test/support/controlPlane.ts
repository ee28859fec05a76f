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
import { spawn, type ChildProcess } from "node:child_process";
import { webcrypto } from "node:crypto";
import { once } from "node:events";
import * as fs from "node:fs";
import * as https from "node:https";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import * as x509 from "@peculiar/x509";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

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

// ---------------------------------------------------------------------------------------
// Cleanup of everything still running when the process goes away.
// ---------------------------------------------------------------------------------------
const live = new Set<{ killSync(): void }>();
let exitHooksInstalled = false;

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on("exit", () => {
    for (const cp of live) cp.killSync();
  });
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = (): void => {
      for (const cp of live) cp.killSync();
      process.removeListener(sig, onSignal);
      // Keep the default behaviour (terminate) unless someone else handles the signal.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
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

// ---------------------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------------------
const BINARIES = ["kube-apiserver", "kubectl", "etcd"] as const;

/** Runs hack/testbin.sh (which respects KUBEBUILDER_ASSETS) and returns the binaries' dir. */
export async function resolveBinDir(): Promise<string> {
  const script = path.join(REPO_ROOT, "hack", "testbin.sh");
  const howTo =
    "Run `make testbin` (builds kube-apiserver, kubectl and etcd from the Go module proxy; needs Go >= 1.26) " +
    "or set KUBEBUILDER_ASSETS to a directory holding kube-apiserver, kubectl and etcd.";
  const res = await run("bash", [script, "kube"], { stderrTo: process.stderr });
  const dir = res.stdout.trim().split("\n").pop()?.trim() ?? "";
  if (res.code !== 0 || dir === "") {
    throw new Error(
      `The test control plane binaries are not available: hack/testbin.sh exited ${res.code}.\n` +
        `${tail(res.stderr, 30)}\n${howTo}`,
    );
  }
  const missing = BINARIES.filter((b) => !isExecutable(path.join(dir, b)));
  if (missing.length > 0) {
    throw new Error(
      `The test control plane binaries are incomplete: ${missing.join(", ")} missing in ${dir}. ${howTo}`,
    );
  }
  return dir;
}

// ---------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------
interface Pki {
  caPem: string;
  servingCertPem: string;
  servingKeyPem: string;
  clientCertPem: string;
  clientKeyPem: string;
  saPublicKeyPem: string;
  saPrivateKeyPem: string;
}

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
const subtle = webcrypto.subtle;
const EC: webcrypto.EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const EC_SIGN: webcrypto.EcdsaParams = { name: "ECDSA", hash: "SHA-256" };

async function makePki(): Promise<Pki> {
  x509.cryptoProvider.set(webcrypto);
  const notBefore = new Date(Date.now() - 60 * 60 * 1000);
  const notAfter = new Date(Date.now() + 7 * 24 * 60 * 60 * 1000);

  const caKeys = (await subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    name: "CN=connector-controller-test-ca",
    keys: caKeys,
    notBefore,
    notAfter,
    signingAlgorithm: EC_SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });

  const leaf = async (subject: string, usage: string, san?: x509.JsonGeneralNames) => {
    const keys = (await subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([usage]),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ];
    if (san) extensions.push(new x509.SubjectAlternativeNameExtension(san));
    const cert = await x509.X509CertificateGenerator.create({
      subject,
      issuer: ca.subject,
      publicKey: keys.publicKey,
      signingKey: caKeys.privateKey,
      notBefore,
      notAfter,
      signingAlgorithm: EC_SIGN,
      extensions,
    });
    return { certPem: cert.toString("pem"), keyPem: await privateKeyPem(keys.privateKey) };
  };

  const serving = await leaf("CN=kube-apiserver", x509.ExtendedKeyUsage.serverAuth, [
    { type: "ip", value: "127.0.0.1" },
    { type: "dns", value: "localhost" },
    { type: "ip", value: "10.0.0.1" },
    { type: "dns", value: "kubernetes" },
    { type: "dns", value: "kubernetes.default" },
    { type: "dns", value: "kubernetes.default.svc" },
  ]);
  const client = await leaf("CN=admin, O=system:masters", x509.ExtendedKeyUsage.clientAuth);

  // RS256 is what every token reviewer understands.
  const saKeys = (await subtle.generateKey(
    {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    },
    true,
    ["sign", "verify"],
  )) as CryptoKeyPair;
  const spki = await subtle.exportKey("spki", saKeys.publicKey);

  return {
    caPem: ca.toString("pem"),
    servingCertPem: serving.certPem,
    servingKeyPem: serving.keyPem,
    clientCertPem: client.certPem,
    clientKeyPem: client.keyPem,
    saPublicKeyPem: x509.PemConverter.encode(spki, "PUBLIC KEY"),
    saPrivateKeyPem: await privateKeyPem(saKeys.privateKey),
  };
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await subtle.exportKey("pkcs8", key), "PRIVATE KEY");
}

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------
class Proc {
  child: ChildProcess | undefined;
  exited: Promise<void> = Promise.resolve();
  exitInfo: string | undefined;
  readonly name: string;
  readonly bin: string;
  readonly args: string[];
  readonly logFile: string;
  readonly onPidsChanged: () => void;

  constructor(name: string, bin: string, args: string[], logFile: string, onPidsChanged: () => void) {
    this.name = name;
    this.bin = bin;
    this.args = args;
    this.logFile = logFile;
    this.onPidsChanged = onPidsChanged;
  }

  start(): void {
    const fd = fs.openSync(this.logFile, "a");
    fs.writeSync(fd, `\n==== ${new Date().toISOString()} ${this.bin} ${this.args.join(" ")}\n`);
    try {
      this.exitInfo = undefined;
      const child = spawn(this.bin, this.args, { stdio: ["ignore", fd, fd], env: { ...process.env } });
      this.child = child;
      this.exited = new Promise((resolve) => {
        child.once("exit", (code, signal) => {
          this.exitInfo = signal ? `killed by ${signal}` : `exited with code ${code}`;
          resolve();
        });
        child.once("error", (err) => {
          this.exitInfo = `failed to start: ${err.message}`;
          resolve();
        });
      });
    } finally {
      fs.closeSync(fd);
    }
    this.onPidsChanged();
  }

  get running(): boolean {
    return this.child !== undefined && this.exitInfo === undefined;
  }

  async stop(graceMs = 10_000): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
    this.onPidsChanged();
  }

  killSync(): void {
    if (this.running) this.child?.kill("SIGKILL");
  }

  logTail(lines = 40): string {
    try {
      return tail(fs.readFileSync(this.logFile, "utf8"), lines);
    } catch {
      return "(no log)";
    }
  }
}

// ---------------------------------------------------------------------------------------
// startControlPlane
// ---------------------------------------------------------------------------------------
export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const binDir = await resolveBinDir();
  const startTimeoutMs = opts.startTimeoutMs ?? 60_000;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "connector-controller-cp-"));
  const logDir = opts.logDir ? path.resolve(opts.logDir) : dir;
  fs.mkdirSync(logDir, { recursive: true });
  const file = (name: string): string => path.join(dir, name);

  const procs: Proc[] = [];
  const writePids = (): void => {
    const pids = procs.filter((p) => p.running && p.child?.pid).map((p) => p.child?.pid);
    try {
      fs.writeFileSync(file("pids"), JSON.stringify(pids));
    } catch {
      // dir already removed
    }
  };
  let stopped = false;
  const handle = {
    killSync: (): void => {
      for (const p of procs) p.killSync();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  installExitHooks();
  live.add(handle);
  const watchdog = spawn(process.execPath, ["-e", WATCHDOG, String(process.pid), dir, logDir], {
    detached: true,
    stdio: "ignore",
  });
  watchdog.unref();

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // kube-apiserver first, so it does not log a storm of etcd errors.
    for (const p of [...procs].reverse()) await p.stop();
    live.delete(handle);
    fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
    const pki = await makePki();
    const write = (name: string, content: string): string => {
      fs.writeFileSync(file(name), content, { mode: 0o600 });
      return file(name);
    };
    write("ca.crt", pki.caPem);
    write("apiserver.crt", pki.servingCertPem);
    write("apiserver.key", pki.servingKeyPem);
    write("admin.crt", pki.clientCertPem);
    write("admin.key", pki.clientKeyPem);
    write("sa.pub", pki.saPublicKeyPem);
    write("sa.key", pki.saPrivateKeyPem);

    // --- etcd ---------------------------------------------------------------------------
    const [etcdPort, etcdPeerPort, apiPort] = (await freePorts(3)) as [number, number, number];
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    const etcd = new Proc(
      "etcd",
      path.join(binDir, "etcd"),
      [
        `--name=default`,
        `--data-dir=${file("etcd")}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=default=${peerUrl}`,
        `--unsafe-no-fsync=true`,
        `--log-level=warn`,
      ],
      path.join(logDir, "etcd.log"),
      writePids,
    );
    procs.push(etcd);
    etcd.start();
    await waitFor(etcd, startTimeoutMs, async () => {
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
    const apiserver = new Proc(
      "kube-apiserver",
      path.join(binDir, "kube-apiserver"),
      apiArgs,
      path.join(logDir, "kube-apiserver.log"),
      writePids,
    );
    procs.push(apiserver);
    const tlsOpts = { ca: pki.caPem, cert: pki.clientCertPem, key: pki.clientKeyPem };
    const waitApi = (): Promise<void> =>
      waitFor(apiserver, startTimeoutMs, async () => {
        const r = await httpsGet(`${server}/readyz`, tlsOpts);
        return r.status === 200;
      });
    apiserver.start();
    await waitApi();

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
        `      certificate-authority-data: ${b64(pki.caPem)}`,
        "users:",
        "  - name: admin",
        "    user:",
        `      client-certificate-data: ${b64(pki.clientCertPem)}`,
        `      client-key-data: ${b64(pki.clientKeyPem)}`,
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
      run(
        path.join(binDir, "kubectl"),
        [`--kubeconfig=${kubeconfigPath}`, `--cache-dir=${file("kubectl-cache")}`, ...args],
        {
          input: o.input,
          timeoutMs: o.timeoutMs ?? 60_000,
        },
      );

    // --- CRDs ---------------------------------------------------------------------------
    const crdDir = path.resolve(opts.crdDir ?? path.join(REPO_ROOT, "crds"));
    if (hasYaml(crdDir)) {
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
      if (crds.length > 0) {
        const waited = await kubectl(["wait", "--for=condition=Established", "--timeout=60s", ...crds]);
        if (waited.code !== 0)
          throw new Error(
            `the CRDs from ${crdDir} did not become Established:\n${waited.stderr}${waited.stdout}`,
          );
      }
    }

    return {
      kubeconfigPath,
      server,
      binDir,
      dir,
      logDir,
      etcdUrl,
      caPem: pki.caPem,
      clientCertPem: pki.clientCertPem,
      clientKeyPem: pki.clientKeyPem,
      serviceAccountIssuer,
      serviceAccountPublicKeyPem: pki.saPublicKeyPem,
      kubectl,
      async restartApiServer(): Promise<void> {
        if (stopped) throw new Error("the control plane is stopped");
        await apiserver.stop();
        // The port is ours: the old process has exited, and Go sets SO_REUSEADDR.
        apiserver.start();
        await waitApi();
      },
      stop,
    };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    await stop().catch(() => undefined);
    throw new Error(`starting the test control plane failed: ${message}`, { cause: err });
  }
}

// ---------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------
async function waitFor(proc: Proc, timeoutMs: number, ready: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = "";
  for (;;) {
    if (!proc.running) {
      throw new Error(
        `${proc.name} ${proc.exitInfo ?? "is not running"}; log ${proc.logFile}:\n${proc.logTail()}`,
      );
    }
    try {
      if (await ready()) return;
      lastError = "not ready yet";
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${proc.name} was not healthy after ${timeoutMs}ms (${lastError}); log ${proc.logFile}:\n${proc.logTail()}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
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

/** Distinct free loopback ports (bound together, then released). */
async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      s.listen(0, "127.0.0.1");
      await once(s, "listening");
      servers.push(s);
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

function run(
  cmd: string,
  args: string[],
  o: { input?: string | undefined; timeoutMs?: number; stderrTo?: NodeJS.WritableStream } = {},
): Promise<KubectlResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
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
      resolve({ code: 127, stdout, stderr: stderr + `${cmd}: ${err.message}\n` });
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout,
        stderr: signal ? `${stderr}${cmd} killed by ${signal}\n` : stderr,
      });
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(o.input ?? "");
  });
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

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
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
