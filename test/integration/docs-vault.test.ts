// docs/vault.md is run, not just read: its shell blocks, in order, against a real
// Vault-API server (test/support/openbao.ts: OpenBao, or HashiCorp Vault 1.14.1) and the
// test kube-apiserver, with the vault (or bao) CLI and kubectl: once per cluster, once
// per tenant for two tenants, a secret, then the by-hand check that a tenant's identity
// reads its own secret and nothing of the other tenant's. The mounts are given other
// paths (AUTH_MOUNT, KV_MOUNT) than the harness's own, which the doc's variables allow.
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, REPO_ROOT, type ControlPlane } from "../support/controlPlane.ts";
import { startOpenBao, type OpenBao } from "../support/openbao.ts";

const DOC = path.join(REPO_ROOT, "docs", "vault.md");

/** The ```sh blocks of the doc, in order, each with the heading above it. */
function shellBlocks(markdown: string): Array<{ heading: string; script: string }> {
  const out: Array<{ heading: string; script: string }> = [];
  let heading = "";
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith("## ")) heading = line.slice(3).trim();
    if (line.trim() === "```sh") {
      const body: string[] = [];
      for (i++; i < lines.length && lines[i]!.trim() !== "```"; i++) body.push(lines[i]!);
      out.push({ heading, script: body.join("\n") });
    }
  }
  return out;
}

let cp: ControlPlane;
let bao: OpenBao;
let work: string;
let env: NodeJS.ProcessEnv;

function sh(
  script: string,
  extra: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      "bash",
      ["-euo", "pipefail", "-c", script],
      { cwd: work, env: { ...env, ...extra }, timeout: 120_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  cp = await startControlPlane();
  bao = await startOpenBao(cp);
  work = fs.mkdtempSync(path.join(os.tmpdir(), "docs-vault-"));
  // The doc says `vault`; OpenBao's CLI is `bao` and takes the same commands.
  const bin = path.join(work, "bin");
  fs.mkdirSync(bin);
  fs.symlinkSync(bao.binary, path.join(bin, "vault"));
  fs.writeFileSync(path.join(work, "ca.crt"), cp.caPem);
  fs.writeFileSync(path.join(work, "vault-ca.crt"), bao.caPem);
  fs.writeFileSync(path.join(work, "password.txt"), "docs-test-password\n");
  env = {
    PATH: `${bin}:${cp.binDir}:${process.env.PATH ?? ""}`,
    HOME: work,
    KUBECONFIG: cp.kubeconfigPath,
    VAULT_ADDR: bao.address,
    VAULT_CACERT: path.join(work, "vault-ca.crt"),
    BAO_ADDR: bao.address,
    BAO_CACERT: path.join(work, "vault-ca.crt"),
    VAULT_TOKEN: bao.rootToken,
    BAO_TOKEN: bao.rootToken,
    KUBERNETES_HOST: cp.server,
    KUBERNETES_CA_FILE: path.join(work, "ca.crt"),
    AUTH_MOUNT: "docs-kubernetes",
    KV_MOUNT: "docs-kv",
  };
}, 600_000);

afterAll(async () => {
  await bao?.stop();
  await cp?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe("docs/vault.md", () => {
  const blocks = shellBlocks(fs.readFileSync(DOC, "utf8"));
  const block = (heading: string, i = 0) => blocks.filter((b) => b.heading === heading)[i]!.script;

  it("has the blocks this test runs", () => {
    expect(blocks.map((b) => b.heading)).toEqual([
      "Once per cluster",
      "Once per tenant namespace",
      "Once per tenant namespace",
      "The SecretProvider",
      "Checking a tenant by hand",
    ]);
  });

  it("grants the controller get on the CA ConfigMap of a caBundleRef, and nothing else", async () => {
    await cp.kubectl(["create", "namespace", "connector-system"]);
    const grant = await sh(block("The SecretProvider"));
    expect(grant.code, grant.stderr).toBe(0);
    const as = "--as=system:serviceaccount:connector-system:connector-controller";
    const canI = async (...args: string[]) =>
      (await cp.kubectl(["auth", "can-i", ...args, "-n", "connector-system", as])).stdout.trim();
    expect(await canI("get", "configmap/vault-ca")).toBe("yes");
    expect(await canI("get", "configmap/other")).toBe("no");
    expect(await canI("list", "configmaps")).toBe("no");
  });

  it("sets up a cluster and two tenants with its own commands, and each tenant reads only its own secrets", async () => {
    const once = await sh(block("Once per cluster"));
    expect(once.code, once.stderr).toBe(0);
    for (const ns of ["team-a", "team-b"]) {
      await cp.kubectl(["create", "namespace", ns]);
      const tenant = await sh(block("Once per tenant namespace"), { NS: ns });
      expect(tenant.code, `${ns}: ${tenant.stderr}`).toBe(0);
      const secret = await sh(block("Once per tenant namespace", 1), { NS: ns });
      expect(secret.code, `${ns}: ${secret.stderr}`).toBe(0);
    }
    const check = await sh(block("Checking a tenant by hand"), { NS: "team-a", OTHER: "team-b" });
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout.trim().split("\n")[0]).toBe("ops@example.com");
    // Both refusals happened (the block exits 1 if either were allowed), and said why.
    expect(check.stderr.match(/Code: 403/g) ?? [], check.stderr).toHaveLength(2);
    expect(check.stderr).toMatch(/permission denied/i);
    expect(check.stderr).not.toContain("docs-test-password");
    expect(check.stdout).not.toContain("docs-test-password");

    // What the doc set up is what the controller relies on: the role's binding and audience.
    const role = await bao.call("GET", "auth/docs-kubernetes/role/connectors-team-a");
    expect(role.data).toMatchObject({
      bound_service_account_names: ["connector-reader"],
      bound_service_account_namespaces: ["team-a"],
      audience: "vault",
      token_policies: ["tenant-team-a"],
    });
  });
});
