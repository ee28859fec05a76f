// `make run`, the README's first command, as a user runs it: it brings up a control plane
// (no kube context is reachable here), installs the examples, reconciles the standalone
// Connectors, serves a gateway whose printed curl and connectorctl lines work as printed,
// and stops cleanly on Ctrl-C.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../controller/src/api/paths.ts";
import type { NormalizedResponse } from "../../controller/src/api/invocation.ts";
import type { Connector } from "../../controller/src/api/types.ts";
import { resolveBinDir } from "../support/controlPlane.ts";
import { runCommand } from "../support/process.ts";
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

/** The lines make run printed for another terminal (indented, after "From another terminal:"). */
function printedLines(text: string): string[] {
  const after = text.slice(text.indexOf("From another terminal:"));
  const lines = after.split("\n").slice(1);
  const end = lines.findIndex((l) => !l.startsWith("  "));
  return lines.slice(0, end === -1 ? undefined : end).map((l) => l.slice(2));
}

/** A printed command, in bash, after every printed export and function (as pasted in order). */
function runPrinted(lines: string[], command: string) {
  const setup = lines.filter((l) => l.startsWith("export ") || /^\w+\(\) \{/.test(l));
  const env = { ...process.env };
  for (const k of ["KUBECONFIG", "CONNECTOR_TOKEN", "CONNECTOR_GATEWAY"]) delete env[k];
  return runCommand("bash", ["-euo", "pipefail", "-c", [...setup, command].join("\n")], {
    env,
    timeoutMs: 120_000,
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
  it("brings up a controller that reconciles the standalone examples and a gateway that runs the printed calls, and stops on SIGINT", async () => {
    // Any free port for the gateway: the printed lines carry the one it got.
    const env = {
      ...process.env,
      KUBECONFIG: join(dataDir, "no-such-kubeconfig"),
      GATEWAY_BIND_ADDRESS: "127.0.0.1:0",
    };
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

    const printed = printedLines(output);
    const find = (re: RegExp) => {
      const line = printed.find((l) => re.test(l));
      expect(line, `a line matching ${re} in:\n${printed.join("\n")}`).toBeDefined();
      return line!;
    };
    const said = (r: { code: number; stdout: string; stderr: string }) =>
      `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\nprinted:\n${printed.join("\n")}`;

    const listed = await runPrinted(printed, find(/^kubectl get connectors -A$/));
    expect(listed.code, said(listed)).toBe(0);
    expect(listed.stdout).toMatch(/team-platform\s+status-webhook\s+http/);

    // The printed curl, its status code written after the body.
    const curl = await runPrinted(printed, `${find(/^curl .*\/operations\/fetch$/)} -w '\\n%{http_code}'`);
    expect(curl.code, said(curl)).toBe(0);
    const body = curl.stdout.slice(0, curl.stdout.lastIndexOf("\n"));
    expect(curl.stdout.slice(curl.stdout.lastIndexOf("\n") + 1)).toBe("200");
    const viaCurl = JSON.parse(body) as NormalizedResponse;
    expect(viaCurl.metadata).toMatchObject({
      namespace: "team-platform",
      connector: "status-webhook",
      operation: "fetch",
      executionMode: "sync",
      providerStatusCode: 200,
    });
    expect(viaCurl.data).toMatchObject({ status: 200, bodyFormat: "json", body: { ok: true } });

    const invoked = await runPrinted(
      printed,
      find(/^connectorctl invoke team-platform\/status-webhook fetch /),
    );
    expect(invoked.code, said(invoked)).toBe(0);
    expect((JSON.parse(invoked.stdout) as NormalizedResponse).metadata).toMatchObject({
      connector: "status-webhook",
      operation: "fetch",
      providerStatusCode: 200,
    });

    const waited = await runPrinted(printed, find(/^connectorctl invoke .* deliverEvent .*--wait$/));
    expect(waited.code, said(waited)).toBe(0);
    const job = JSON.parse(waited.stdout) as NormalizedResponse;
    expect(job.metadata).toMatchObject({ operation: "deliverEvent", executionMode: "async" });
    expect(job.data).toMatchObject({ status: 200 });

    const jobs = await runPrinted(printed, find(/^connectorctl jobs -n team-platform$/));
    expect(jobs.code, said(jobs)).toBe(0);
    expect(jobs.stdout).toMatch(/status-webhook\s+deliverEvent\s+succeeded/);

    process.kill(-child.pid!, "SIGINT");
    const exit = await new Promise<string>((resolve) =>
      child!.on("exit", (c, sig) => resolve(sig ?? String(c))),
    );
    expect(output).toContain("stopped");
    expect(["0", "2", "SIGINT"]).toContain(exit); // make may die of the SIGINT itself
    const after = await kubectl(bin, kubeconfig, ["get", "--raw", "/healthz"]);
    expect(after.code).not.toBe(0); // the local control plane is gone
  }, 420_000);
});
