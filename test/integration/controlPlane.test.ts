// The test control plane itself: real etcd + kube-apiserver from hack/testbin.sh.
import * as fs from "node:fs";
import * as path from "node:path";
import { loadAll } from "js-yaml";
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { REPO_ROOT, startControlPlane, type ControlPlane } from "../support/controlPlane.ts";

// The release hack/testbin.sh pins (unless KUBEBUILDER_ASSETS supplies other binaries).
const PINNED_K8S_VERSION = /^K8S_VERSION="\$\{K8S_VERSION:-(v[0-9.]+)\}"$/m.exec(
  fs.readFileSync(path.join(REPO_ROOT, "hack", "testbin.sh"), "utf8"),
)?.[1];

describe("test control plane", () => {
  let cp: ControlPlane;

  beforeAll(async () => {
    cp = await startControlPlane();
  });

  afterAll(async () => {
    await cp?.stop();
  });

  const ok = async (args: string[], input?: string): Promise<string> => {
    const r = await cp.kubectl(args, { input });
    expect(r.code, `kubectl ${args.join(" ")}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };

  it("serves the pinned Kubernetes release", async () => {
    const version = JSON.parse(await ok(["version", "-o", "json"])) as {
      serverVersion: { gitVersion: string; major: string; minor: string };
      clientVersion: { gitVersion: string };
    };
    const expected = process.env.KUBEBUILDER_ASSETS
      ? expect.stringMatching(/^v1\.\d+\.\d+/)
      : PINNED_K8S_VERSION;
    expect(PINNED_K8S_VERSION).toBeDefined();
    expect(version.serverVersion.gitVersion).toEqual(expected);
    expect(version.clientVersion.gitVersion).toEqual(expected);
    expect(version.serverVersion.major).toBe("1");
    expect(cp.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it("is healthy", async () => {
    expect((await ok(["get", "--raw", "/healthz"])).trim()).toBe("ok");
    expect((await ok(["get", "--raw", "/readyz"])).trim()).toBe("ok");
  });

  it("gives the kubeconfig's user cluster-admin rights through system:masters", async () => {
    const whoami = JSON.parse(await ok(["auth", "whoami", "-o", "json"])) as {
      status: { userInfo: { username: string; groups: string[] } };
    };
    expect(whoami.status.userInfo.username).toBe("admin");
    expect(whoami.status.userInfo.groups).toContain("system:masters");
    expect((await ok(["auth", "can-i", "*", "*"])).trim()).toBe("yes");
  });

  it("enforces RBAC for other users", async () => {
    const r = await cp.kubectl(["auth", "can-i", "get", "secrets", "--as", "someone"]);
    expect(r.stdout.trim()).toBe("no");
  });

  it("issues service-account tokens for an audience (signing key and issuer are set up)", async () => {
    // No kube-controller-manager runs here, so nothing creates the `default` ServiceAccount.
    const created = await cp.kubectl(["create", "serviceaccount", "default", "-n", "default"]);
    expect(created.code === 0 || created.stderr.includes("AlreadyExists"), created.stderr).toBe(true);

    const token = (await ok(["create", "token", "default", "-n", "default", "--audience", "vault"])).trim();
    const [, payload] = token.split(".");
    const claims = JSON.parse(Buffer.from(payload ?? "", "base64url").toString("utf8")) as {
      iss: string;
      aud: string[];
      sub: string;
    };
    expect(claims.iss).toBe(cp.serviceAccountIssuer);
    expect(claims.aud).toEqual(["vault"]);
    expect(claims.sub).toBe("system:serviceaccount:default:default");

    // The API server itself accepts the token it issued (what Vault's TokenReview relies on).
    const review = JSON.parse(
      await ok(
        ["create", "-o", "json", "-f", "-"],
        JSON.stringify({
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenReview",
          spec: { token, audiences: ["vault"] },
        }),
      ),
    ) as { status: { authenticated?: boolean; user?: { username: string } } };
    expect(review.status.authenticated).toBe(true);
    expect(review.status.user?.username).toBe("system:serviceaccount:default:default");
  });

  it("installs the CRDs from crds/", async () => {
    const crdDir = path.join(REPO_ROOT, "crds");
    const files = fs.existsSync(crdDir)
      ? fs.readdirSync(crdDir, { recursive: true, encoding: "utf8" }).filter((f) => /\.ya?ml$/.test(f))
      : [];
    const listed = await ok(["get", "crd", "-o", "name"]);
    if (files.length === 0) return; // nothing to install yet
    const names = files.flatMap((f) =>
      (
        loadAll(fs.readFileSync(path.join(crdDir, f), "utf8")) as {
          kind?: string;
          metadata?: { name?: string };
        }[]
      )
        .filter((doc) => doc?.kind === "CustomResourceDefinition")
        .map((doc) => doc.metadata?.name),
    );
    expect(names.length).toBeGreaterThan(0);
    for (const name of names)
      expect(listed).toContain(`customresourcedefinition.apiextensions.k8s.io/${name}`);
  });

  it("keeps working after the API server restarts", async () => {
    await ok(["create", "configmap", "before-restart", "--from-literal=k=v"]);
    await cp.restartApiServer();
    expect((await ok(["get", "--raw", "/healthz"])).trim()).toBe("ok");
    const cm = JSON.parse(await ok(["get", "configmap", "before-restart", "-o", "json"])) as {
      data: Record<string, string>;
    };
    expect(cm.data).toEqual({ k: "v" });
    await ok(["create", "configmap", "after-restart", "--from-literal=k=v"]);
    await ok(["delete", "configmap", "before-restart", "after-restart"]);
  });
});
