// kubectl against the test control plane, for what the tests set up and read back.
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import * as yaml from "js-yaml";
import { projectRoot } from "../../controller/src/api/paths.ts";
import type { ControlPlane } from "./controlPlane.ts";

export async function kubectlOk(cp: ControlPlane, args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

export async function apply(cp: ControlPlane, docs: object | object[]): Promise<string> {
  const list = Array.isArray(docs) ? docs : [docs];
  return kubectlOk(cp, ["apply", "-f", "-"], list.map((d) => yaml.dump(d)).join("---\n"));
}

export async function ensureNamespace(cp: ControlPlane, ns: string): Promise<void> {
  await apply(cp, { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
}

/** `kubectl create <args>`, content when the object already exists. */
export async function createIfAbsent(cp: ControlPlane, args: string[]): Promise<void> {
  const r = await cp.kubectl(["create", ...args]);
  if (r.code !== 0 && !/AlreadyExists|already exists/.test(r.stderr))
    throw new Error(`kubectl create ${args.join(" ")} failed: ${r.stderr || r.stdout}`);
}

/** The example catalog: the ConnectorTypes and the policy templates. */
export async function applyCatalog(cp: ControlPlane): Promise<void> {
  await kubectlOk(cp, [
    "apply",
    "-f",
    join(projectRoot, "examples/types"),
    "-f",
    join(projectRoot, "examples/policy-templates"),
  ]);
}

/** A kubeconfig that is service account `sa` of `ns` and nothing else (a token of an hour). */
export async function serviceAccountKubeConfig(
  cp: ControlPlane,
  ns: string,
  sa: string,
): Promise<KubeConfig> {
  const token = (await kubectlOk(cp, ["create", "token", sa, "-n", ns, "--duration=1h"])).trim();
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "test", server: cp.server, caData: Buffer.from(cp.caPem).toString("base64") }],
    users: [{ name: sa, token }],
    contexts: [{ name: "sa", cluster: "test", user: sa }],
    currentContext: "sa",
  });
  return kc;
}
