// `make run`, the README's first command, as a user runs it: it brings up a control plane
// (no kube context is reachable here), installs the examples, reconciles the standalone
// Connectors, and stops cleanly on Ctrl-C.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../controller/src/api/paths.ts";
import type { Connector } from "../../controller/src/api/types.ts";
import { resolveBinDir } from "../support/controlPlane.ts";
import { eventually } from "../support/wait.ts";

let child: ChildProcess | undefined;
let output = "";
const dataDir = mkdtempSync(join(tmpdir(), "cc-make-run-"));

function kubectl(bin: string, kubeconfig: string, args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    const p = spawn(bin, ["--kubeconfig", kubeconfig, ...args]);
    let stdout = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.on("exit", (code) => resolve({ code: code ?? 1, stdout }));
  });
}

afterAll(async () => {
  if (child?.pid && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  rmSync(dataDir, { recursive: true, force: true });
});

describe("make run", () => {
  it("brings up a working controller that reconciles the standalone examples, and stops on SIGINT", async () => {
    const env = { ...process.env, KUBECONFIG: join(dataDir, "no-such-kubeconfig") };
    child = spawn("make", ["run", `ARGS=--data-dir ${join(dataDir, "pglite")}`], {
      cwd: projectRoot,
      env,
      detached: true,
    });
    child.stdout!.on("data", (d) => (output += d));
    child.stderr!.on("data", (d) => (output += d));

    const kubeconfig = await eventually(
      async () => /export KUBECONFIG=(\S+)/.exec(output)?.[1],
      "make run to print its KUBECONFIG",
      240_000,
    );
    expect(output).toContain("no reachable kube context; starting a local etcd + kube-apiserver");
    const bin = join(await resolveBinDir(), "kubectl");
    const connector = await eventually(
      async () => {
        const r = await kubectl(bin, kubeconfig, [
          "get",
          "connector",
          "status-webhook",
          "-n",
          "team-platform",
          "-o",
          "json",
        ]);
        if (r.code !== 0) return undefined;
        const c = JSON.parse(r.stdout) as Connector;
        return c.status?.observedGeneration === c.metadata.generation ? c : undefined;
      },
      "status-webhook to be reconciled",
      60_000,
    );
    expect(connector.status?.instanceId).toMatch(/^[0-9a-f-]{36}$/);
    expect(connector.status?.conditions?.find((x) => x.type === "Synced")?.status).toBe("True");
    expect(connector.status?.conditions?.find((x) => x.type === "Healthy")).toMatchObject({
      status: "True",
      reason: "ConnectivityOK",
    });
    expect(connector.status?.state).toBe("active");
    const types = await kubectl(bin, kubeconfig, ["get", "ctype", "-o", "name"]);
    expect(types.stdout.trim().split("\n").sort()).toEqual(
      ["discord", "http", "imap", "mattermost", "postgres", "smtp"].map(
        (t) => `connectortype.cynodeai.io/${t}`,
      ),
    );

    process.kill(-child.pid!, "SIGINT");
    const exit = await new Promise<string>((resolve) =>
      child!.on("exit", (c, sig) => resolve(sig ?? String(c))),
    );
    expect(output).toContain("stopped");
    expect(["0", "2", "SIGINT"]).toContain(exit); // make may die of the SIGINT itself
    const after = await kubectl(bin, kubeconfig, ["get", "--raw", "/healthz"]);
    expect(after.code).not.toBe(0); // the local control plane is gone
  }, 300_000);
});
