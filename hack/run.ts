// `make run`: the controller and the gateway on embedded defaults. Uses the current kube
// context when one answers; otherwise starts a local etcd + kube-apiserver with the tests'
// harness. Installs the CRDs, the example catalog, the example Connectors that need no
// outside server and a ServiceAccount allowed to call them (examples/rbac/), then runs the
// controller and a gateway on loopback in the foreground (PGlite under .data/, readable
// logs), and prints how to call an operation.
//
// Both run in this one process, on one PGlite database: PGlite is PostgreSQL compiled to
// WASM inside the process that opens it, and its data directory cannot be opened by a
// second process (nothing arbitrates between two of them), so a gateway process of its own
// could not share it. In a cluster they are separate Deployments on one PostgreSQL server;
// with --database-url in ARGS they share that server here too.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { createServer } from "node:http";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { KubeConfig, VersionApi } from "@kubernetes/client-node";
import pretty from "pino-pretty";
import { projectRoot } from "../controller/src/api/paths.ts";
import { ConfigError, loadConfig, usage } from "../controller/src/config.ts";
import { startGateway } from "../controller/src/gateway.ts";
import { loadGatewayConfig } from "../controller/src/gatewayConfig.ts";
import { startController } from "../controller/src/main.ts";
import { createLogger } from "../controller/src/observability/logger.ts";
import { openDatabase } from "../controller/src/store/database.ts";
import { resolveBinDir, startControlPlane, type ControlPlane } from "../test/support/controlPlane.ts";

async function reachableKubeconfig(): Promise<string | undefined> {
  const path = process.env.KUBECONFIG || join(homedir(), ".kube", "config");
  if (!existsSync(path)) return undefined;
  try {
    const kc = new KubeConfig();
    kc.loadFromFile(path);
    if (!kc.getCurrentCluster()) return undefined;
    await Promise.race([
      kc.makeApiClient(VersionApi).getCode(),
      new Promise((_, reject) => setTimeout(() => reject(new Error("timeout")), 3000)),
    ]);
    return path;
  } catch {
    return undefined;
  }
}

function kubectl(bin: string, kubeconfig: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ["--kubeconfig", kubeconfig, ...args], {
      stdio: ["ignore", "inherit", "inherit"],
    });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`kubectl ${args.join(" ")} exited ${code}`)),
    );
  });
}

/**
 * The standalone example `status-webhook` delivers to 127.0.0.1:18080; a tiny receiver
 * there lets its health probe succeed, so `make run` shows a healthy connector.
 */
async function startExampleReceiver(): Promise<void> {
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"ok":true}\n');
  });
  await new Promise<void>((resolve) => {
    server.once("error", () => {
      console.log(
        "make run: 127.0.0.1:18080 is taken; status-webhook will report what its probe finds there",
      );
      resolve();
    });
    server.listen(18080, "127.0.0.1", () => resolve());
  });
  server.unref();
}

async function main(): Promise<void> {
  const extraArgs = process.argv.slice(2);
  let cp: ControlPlane | undefined;
  let kubeconfig = await reachableKubeconfig();
  let kubectlBin = "kubectl";
  if (kubeconfig) {
    console.log(`make run: using the current kube context (${kubeconfig})`);
    if (
      !(await new Promise((r) =>
        spawn("kubectl", ["version", "--client"], { stdio: "ignore" })
          .on("error", () => r(false))
          .on("exit", (c) => r(c === 0)),
      ))
    )
      kubectlBin = join(await resolveBinDir(), "kubectl");
    await kubectl(kubectlBin, kubeconfig, ["apply", "-f", join(projectRoot, "crds")]);
    await kubectl(kubectlBin, kubeconfig, [
      "wait",
      "--for=condition=Established",
      "crd",
      "--all",
      "--timeout=60s",
    ]);
  } else {
    console.log("make run: no reachable kube context; starting a local etcd + kube-apiserver");
    cp = await startControlPlane({ logDir: join(projectRoot, ".data", "control-plane-logs") });
    kubeconfig = cp.kubeconfigPath;
    kubectlBin = join(cp.binDir, "kubectl");
  }

  await kubectl(kubectlBin, kubeconfig, [
    "apply",
    "-f",
    join(projectRoot, "examples/types"),
    "-f",
    join(projectRoot, "examples/policy-templates"),
  ]);
  // The standalone examples live in team-platform.
  await kubectl(kubectlBin, kubeconfig, ["get", "namespace", "team-platform"]).catch(() =>
    kubectl(kubectlBin, kubeconfig!, ["create", "namespace", "team-platform"]),
  );
  await kubectl(kubectlBin, kubeconfig, [
    "apply",
    "-l",
    "cynodeai.io/example=standalone",
    "-f",
    join(projectRoot, "examples/connectors"),
    "-f",
    join(projectRoot, "examples/rbac"),
  ]);

  await startExampleReceiver();
  mkdirSync(join(projectRoot, ".data"), { recursive: true });
  let config;
  try {
    config = loadConfig([
      "--kubeconfig",
      kubeconfig,
      "--data-dir",
      join(projectRoot, ".data", "pglite"),
      ...extraArgs,
    ]);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`make run: ${err.message}\n\n${usage()}`);
      process.exit(2);
    }
    throw err;
  }
  const readable = () => pretty({ colorize: process.stdout.isTTY, translateTime: "SYS:HH:MM:ss" });
  const log = createLogger({ level: config.logLevel, destination: readable() });
  const database = await openDatabase(
    config.databaseUrl ? { url: config.databaseUrl } : { dataDir: config.dataDir },
  );
  const running = await startController(config, log, { database });
  const gatewayConfig = loadGatewayConfig([
    "--kubeconfig",
    kubeconfig,
    // GATEWAY_BIND_ADDRESS moves it (127.0.0.1:0 for any free port); always loopback here.
    "--bind-address",
    process.env.GATEWAY_BIND_ADDRESS || "127.0.0.1:8090",
    // The controller's /metrics and probes are on; the gateway's stay off to take no more ports.
    "--metrics-bind-address",
    "0",
    "--health-probe-bind-address",
    "0",
    "--log-level",
    config.logLevel,
  ]);
  const gateway = await startGateway(
    gatewayConfig,
    createLogger({ level: config.logLevel, destination: readable(), name: "connector-gateway" }),
    { database },
  );
  console.log(howToCall(kubeconfig, kubectlBin, `http://${gateway.addresses.api}`));

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await gateway.stop();
    await running.stop();
    await database.close();
    await cp?.stop();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());
}

/**
 * What to paste into another terminal: the cluster, then an operation on the standalone
 * example through the gateway with curl and with connectorctl, as the ServiceAccount that
 * examples/rbac/connector-invoker.yaml lets get, list and invoke Connectors in team-platform.
 */
function howToCall(kubeconfig: string, kubectlBin: string, gatewayUrl: string): string {
  const q = (path: string) => (/^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replaceAll("'", `'\\''`)}'`);
  const operation = "/v1/namespaces/team-platform/connectors/status-webhook/operations/fetch";
  const lines = [
    `export KUBECONFIG=${q(kubeconfig)}`,
    ...(kubectlBin === "kubectl" ? [] : [`export PATH=${q(dirname(kubectlBin))}:$PATH`]),
    "kubectl get connectors -A",
    "# an operation through the gateway, as the ServiceAccount examples/rbac/connector-invoker.yaml allows",
    `export CONNECTOR_GATEWAY=${gatewayUrl}`,
    "export CONNECTOR_TOKEN=$(kubectl create token connector-demo -n team-platform)",
    `curl -sS --fail-with-body -H "Authorization: Bearer $CONNECTOR_TOKEN" -H "Content-Type: application/json" -d '{"input":{"path":"/healthz"}}' $CONNECTOR_GATEWAY${operation}`,
    `connectorctl() { ${q(process.execPath)} ${q(join(projectRoot, "controller/src/cli/connectorctl.ts"))} "$@"; }`,
    `connectorctl invoke team-platform/status-webhook fetch --input '{"path":"/healthz"}'`,
    `connectorctl invoke team-platform/status-webhook deliverEvent --input '{"type":"demo.ping","data":{"n":1}}' --wait`,
    "connectorctl jobs -n team-platform",
  ];
  return [
    "",
    `connector-controller and connector-gateway (${gatewayUrl}) are running. From another terminal:`,
    ...lines.map((l) => `  ${l}`),
    "",
  ].join("\n");
}

main().catch((err: unknown) => {
  console.error(`make run: ${(err as Error)?.stack ?? String(err)}`);
  process.exit(1);
});
