// Small helpers for integration tests that drive the real control plane with kubectl.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as yaml from "js-yaml";
import { projectRoot } from "../../controller/src/api/paths.ts";
import type { Connector } from "../../controller/src/api/types.ts";
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

export async function getConnector(
  cp: ControlPlane,
  ns: string,
  name: string,
): Promise<Connector | undefined> {
  const r = await cp.kubectl(["get", "connector", name, "-n", ns, "-o", "json"]);
  if (r.code !== 0) {
    if (/NotFound/.test(r.stderr)) return undefined;
    throw new Error(r.stderr);
  }
  return JSON.parse(r.stdout) as Connector;
}

export function condition(c: Connector | undefined, type: string) {
  return c?.status?.conditions?.find((x) => x.type === type);
}

/** Polls until `check` returns a value (not undefined/false) or the time runs out. */
export async function eventually<T>(
  check: () => Promise<T | undefined | false>,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`,
      );
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The standalone `status-webhook` example, renamed and pointed at a loopback target. */
export function httpConnector(
  ns: string,
  name: string,
  baseUrl: string,
  annotations?: Record<string, string>,
): Connector {
  const c = yaml.load(
    readFileSync(join(projectRoot, "examples/connectors/status-webhook.yaml"), "utf8"),
  ) as Connector;
  c.metadata = { name, namespace: ns, ...(annotations ? { annotations } : {}) };
  c.spec.config = { ...c.spec.config, baseUrl: `${baseUrl}/hooks/status` };
  return c;
}
