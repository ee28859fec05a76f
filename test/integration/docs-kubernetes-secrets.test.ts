// docs/kubernetes-secrets.md is run, not just read: its shell blocks, in order, against the
// test kube-apiserver with kubectl (the reader, its Role, the Secret, the can-i check), then
// its SecretProvider is applied as written and the Secret the doc made is resolved the way
// the controller resolves it: as the namespace's reader, by an identity that holds only the
// chart's impersonate grant.
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import * as yaml from "js-yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SecretProvider } from "../../controller/src/api/types.ts";
import { KubeServiceAccountTokens } from "../../controller/src/kube/serviceAccountTokens.ts";
import { KubeTenantSecrets } from "../../controller/src/kube/tenantSecrets.ts";
import { createLogger } from "../../controller/src/observability/logger.ts";
import { VaultSecretResolver } from "../../controller/src/secrets/resolver.ts";
import { apply, kubectlOk } from "../support/cluster.ts";
import { startControlPlane, REPO_ROOT, type ControlPlane } from "../support/controlPlane.ts";

const DOC = path.join(REPO_ROOT, "docs", "kubernetes-secrets.md");

/** The fenced blocks of one language, in order, each with the heading above it. */
function blocks(markdown: string, lang: string): Array<{ heading: string; body: string }> {
  const out: Array<{ heading: string; body: string }> = [];
  let heading = "";
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith("## ")) heading = line.slice(3).trim();
    if (line.trim() === "```" + lang) {
      const body: string[] = [];
      for (i++; i < lines.length && lines[i]!.trim() !== "```"; i++) body.push(lines[i]!);
      out.push({ heading, body: body.join("\n") });
    }
  }
  return out;
}

let cp: ControlPlane;
let work: string;

function sh(
  script: string,
  extra: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      "bash",
      ["-euo", "pipefail", "-c", script],
      {
        cwd: work,
        env: {
          PATH: `${cp.binDir}:${process.env.PATH ?? ""}`,
          HOME: work,
          KUBECONFIG: cp.kubeconfigPath,
          ...extra,
        },
        timeout: 120_000,
      },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  cp = await startControlPlane();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "docs-k8s-secrets-"));
  fs.writeFileSync(path.join(work, "password.txt"), "docs-test-password");
}, 300_000);

afterAll(async () => {
  await cp?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe("docs/kubernetes-secrets.md", () => {
  const doc = fs.readFileSync(DOC, "utf8");
  const shell = blocks(doc, "sh");

  it("has the blocks this test runs", () => {
    expect(shell.map((b) => b.heading)).toEqual([
      "Per tenant namespace",
      "Per tenant namespace",
      "Per tenant namespace",
    ]);
  });

  it("sets up a tenant with its own commands; the controller then reads the Secret as the tenant's reader", async () => {
    const NS = "team-ops";
    await kubectlOk(cp, ["create", "namespace", NS]);
    for (const [i, b] of shell.entries()) {
      const r = await sh(b.body, { NS });
      expect(r.code, `block ${i}: ${r.stderr}`).toBe(0);
      if (i === 2) expect(r.stdout.trim()).toBe("yes");
    }

    // The SecretProvider as the doc writes it.
    const provider = (yaml.loadAll(blocks(doc, "yaml")[0]!.body) as SecretProvider[]).find(
      (d) => d.kind === "SecretProvider",
    )!;
    const stored = JSON.parse(
      await kubectlOk(cp, ["apply", "-o", "json", "-f", "-"], JSON.stringify(provider)),
    ) as SecretProvider;

    // The controller's identity: only the chart's grant (impersonate connector-reader).
    await kubectlOk(cp, ["create", "namespace", "connector-system"]);
    await kubectlOk(cp, ["create", "serviceaccount", "connector-controller", "-n", "connector-system"]);
    await apply(cp, [
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRole",
        metadata: { name: "impersonate-readers" },
        rules: [
          {
            apiGroups: [""],
            resources: ["serviceaccounts"],
            resourceNames: ["connector-reader"],
            verbs: ["impersonate"],
          },
        ],
      },
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRoleBinding",
        metadata: { name: "impersonate-readers" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "impersonate-readers" },
        subjects: [{ kind: "ServiceAccount", name: "connector-controller", namespace: "connector-system" }],
      },
    ]);
    const token = (
      await kubectlOk(cp, ["create", "token", "connector-controller", "-n", "connector-system"])
    ).trim();
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "test", server: cp.server, caData: Buffer.from(cp.caPem).toString("base64") }],
      users: [{ name: "ctl", token }],
      contexts: [{ name: "ctl", cluster: "test", user: "ctl" }],
      currentContext: "ctl",
    });
    const resolver = new VaultSecretResolver({
      providers: { get: (n) => (n === stored.metadata.name ? stored : undefined) },
      tokens: new KubeServiceAccountTokens(kc),
      tenantSecrets: new KubeTenantSecrets(kc),
      namespaceLabels: () => ({}),
      hmacKey: Buffer.alloc(32, 1),
      log: createLogger({ level: "silent" }),
    });
    try {
      const got = await resolver.resolve(NS, {
        provider: stored.metadata.name,
        name: "ops-mail-creds",
        keys: { username: "username", password: "password" },
      });
      expect(got.values).toMatchObject({ username: "ops@example.com", password: "docs-test-password" });
      // A Secret the Role does not name is refused by RBAC, as the doc's table says.
      await kubectlOk(cp, ["create", "secret", "generic", "unrelated", "-n", NS, "--from-literal=x=y"]);
      await expect(
        resolver.resolve(NS, { provider: stored.metadata.name, name: "unrelated" }),
      ).rejects.toMatchObject({ reason: "PermissionDenied" });
    } finally {
      await resolver.close();
    }
  });
});
