// The gateway in this process, against the test control plane and database (its API and
// probe servers on random loopback ports, its log lines kept), and its callers: a
// ServiceAccount with a Role of the verbs a test grants it, and a token for it, as an
// operator would set one up with kubectl.
import { startGateway, type RunningGateway } from "../../controller/src/gateway.ts";
import { loadGatewayConfig } from "../../controller/src/gatewayConfig.ts";
import { createLogger } from "../../controller/src/observability/logger.ts";
import { apply, kubectlOk } from "./cluster.ts";
import type { ControlPlane } from "./controlPlane.ts";

export interface TestGateway extends RunningGateway {
  /** http://127.0.0.1:<port> of its API. */
  url: string;
  logLines: string[];
}

export async function startTestGateway(
  cp: ControlPlane,
  databaseUrl: string,
  extraArgs: string[] = [],
): Promise<TestGateway> {
  const config = loadGatewayConfig([
    "--kubeconfig",
    cp.kubeconfigPath,
    "--database-url",
    databaseUrl,
    "--bind-address",
    "127.0.0.1:0",
    "--metrics-bind-address",
    "127.0.0.1:0",
    "--health-probe-bind-address",
    "127.0.0.1:0",
    "--log-level",
    "debug",
    ...extraArgs,
  ]);
  const logLines: string[] = [];
  const destination = {
    write: (line: string) => void logLines.push(line),
  } as unknown as NodeJS.WritableStream;
  const gateway = await startGateway(
    config,
    createLogger({ level: config.logLevel, destination, name: "connector-gateway" }),
  );
  return Object.assign(gateway, { url: `http://${gateway.addresses.api}`, logLines });
}

/**
 * A ServiceAccount `name` in `ns` whose Role grants `verbs` on connectors there (none: no
 * Role at all), and a token for it from `kubectl create token`.
 */
export async function callerToken(
  cp: ControlPlane,
  ns: string,
  name: string,
  verbs: string[],
): Promise<string> {
  await apply(cp, [
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name, namespace: ns } },
    ...(verbs.length
      ? [
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "Role",
            metadata: { name: `${name}-connectors`, namespace: ns },
            rules: [{ apiGroups: ["cynodeai.io"], resources: ["connectors"], verbs }],
          },
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "RoleBinding",
            metadata: { name: `${name}-connectors`, namespace: ns },
            roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: `${name}-connectors` },
            subjects: [{ kind: "ServiceAccount", name, namespace: ns }],
          },
        ]
      : []),
  ]);
  return (await kubectlOk(cp, ["create", "token", name, "-n", ns])).trim();
}
