// Connectors in integration tests: made from the shipped examples (pointed at a loopback
// target, never at the fixed address an example ships with), read back with kubectl, and
// waited for until their status says what the test expects.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as yaml from "js-yaml";
import { projectRoot } from "../../controller/src/api/paths.ts";
import type { Connector, SecretRef } from "../../controller/src/api/types.ts";
import type { ControlPlane } from "./controlPlane.ts";
import { eventually } from "./wait.ts";

/** Where the shipped standalone example delivers (`make run`'s demo receiver listens there). */
export const EXAMPLE_RECEIVER = "http://127.0.0.1:18080";

/** An example's YAML as shipped, with its receiver address replaced by `targetUrl`. */
export function exampleYaml(rel: string, targetUrl: string): string {
  return readFileSync(join(projectRoot, rel), "utf8").replaceAll(EXAMPLE_RECEIVER, targetUrl);
}

/** The standalone `status-webhook` example, renamed and pointed at a loopback target. */
export function httpConnector(
  ns: string,
  name: string,
  baseUrl: string,
  annotations?: Record<string, string>,
): Connector {
  const c = yaml.load(exampleYaml("examples/connectors/status-webhook.yaml", baseUrl)) as Connector;
  c.metadata = { name, namespace: ns, ...(annotations ? { annotations } : {}) };
  return c;
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

/** Until the Connector exists and `pred` holds for it; returns it. */
export async function waitConnector(
  cp: ControlPlane,
  ns: string,
  name: string,
  pred: (c: Connector) => boolean,
  what: string,
  timeoutMs = 90_000,
): Promise<Connector> {
  return eventually(
    async () => {
      const c = await getConnector(cp, ns, name);
      return c && pred(c) ? c : undefined;
    },
    `${ns}/${name}: ${what}`,
    timeoutMs,
  );
}

/** Ready=True for the Connector's current generation. */
export const isReady = (c: Connector): boolean =>
  condition(c, "Ready")?.status === "True" && c.status?.observedGeneration === c.metadata.generation;

export function waitReady(
  cp: ControlPlane,
  ns: string,
  name: string,
  timeoutMs = 30_000,
): Promise<Connector> {
  return waitConnector(cp, ns, name, isReady, "Ready", timeoutMs);
}

/** The path the probe of a bearerConnector requests on its target. */
export const probePath = (ns: string, name: string) => `/c/${ns}/${name}/health`;

/** An http Connector (bearer auth) on `targetUrl` whose token comes from `ref`, probed every `interval` s. */
export function bearerConnector(
  targetUrl: string,
  ns: string,
  name: string,
  ref: SecretRef,
  interval = 10,
): Connector {
  const c = httpConnector(ns, name, targetUrl);
  c.spec.config = {
    baseUrl: `${targetUrl}/c/${ns}/${name}`,
    healthPath: "/health",
    method: "POST",
    auth: { scheme: "bearer" },
    timeoutMs: 5000,
  };
  c.spec.credentials = { mode: "secretRef", secretRef: ref };
  c.spec.healthCheck = { intervalSeconds: interval, timeoutSeconds: 5 };
  return c;
}
