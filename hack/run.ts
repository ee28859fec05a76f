// `make run`: the controller on embedded defaults. Uses the current kube context when one
// answers; otherwise starts a local etcd + kube-apiserver with the tests' harness. Installs
// the CRDs, the example catalog and the example Connectors that need no outside server,
// then runs the controller in the foreground (PGlite under .data/, readable logs).
import { spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { createServer } from "node:http";
import { homedir } from "node:os";
import { join } from "node:path";
import { KubeConfig, VersionApi } from "@kubernetes/client-node";
import pretty from "pino-pretty";
import { projectRoot } from "../controller/src/api/paths.ts";
import { ConfigError, loadConfig, usage } from "../controller/src/config.ts";
import { startController } from "../controller/src/main.ts";
import { createLogger } from "../controller/src/observability/logger.ts";
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
  const log = createLogger({
    level: config.logLevel,
    destination: pretty({ colorize: process.stdout.isTTY, translateTime: "SYS:HH:MM:ss" }),
  });
  const running = await startController(config, log);
  console.log(
    `\nconnector-controller is running. From another terminal:\n  export KUBECONFIG=${kubeconfig}\n  kubectl get connectors -A\n`,
  );

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await running.stop();
    await cp?.stop();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());
}

main().catch((err: unknown) => {
  console.error(`make run: ${(err as Error)?.stack ?? String(err)}`);
  process.exit(1);
});
