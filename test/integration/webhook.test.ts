// Admission-time validation: the real kube-apiserver calls the controller's webhook before
// it stores a Connector, and kubectl shows the same message `connectorctl validate` prints.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import * as yaml from "js-yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../controller/src/api/paths.ts";
import { formatProblem, validateFiles } from "../../controller/src/cli/validate.ts";
import { apply, kubectlOk } from "../support/cluster.ts";
import { httpConnector } from "../support/connectors.ts";
import type { ControlPlane } from "../support/controlPlane.ts";
import { freePort } from "../support/net.ts";
import { createTestCa } from "../support/pki.ts";
import { startWorld, type World } from "../support/world.ts";

let world: World;
let cp: ControlPlane;
let certDir: string;
const NS = "team-admission";

beforeAll(async () => {
  world = await startWorld({ namespaces: [NS] });
  cp = world.cp;
  certDir = world.tempDir("cc-webhook-");
  const ca = await createTestCa("connector-controller-webhook-test-ca");
  const cert = await ca.issueServerCert({ ips: ["127.0.0.1"], dns: ["localhost"] });
  writeFileSync(join(certDir, "tls.crt"), cert.certPem);
  writeFileSync(join(certDir, "tls.key"), cert.keyPem);
  const port = await freePort();
  await world.startController(["--webhook-port", String(port), "--webhook-cert-dir", certDir]);
  await apply(cp, {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: "ValidatingWebhookConfiguration",
    metadata: { name: "connector-controller" },
    webhooks: [
      {
        name: "validate.connectors.cynodeai.io",
        clientConfig: {
          url: `https://127.0.0.1:${port}/validate-connector`,
          caBundle: Buffer.from(ca.caPem).toString("base64"),
        },
        rules: [
          {
            apiGroups: ["cynodeai.io"],
            apiVersions: ["v1alpha1"],
            operations: ["CREATE", "UPDATE"],
            resources: ["connectors"],
            scope: "Namespaced",
          },
        ],
        admissionReviewVersions: ["v1"],
        sideEffects: "None",
        failurePolicy: "Fail",
        timeoutSeconds: 5,
      },
    ],
  });
}, 600_000);

afterAll(async () => {
  await world?.stop();
});

describe("the validating admission webhook", () => {
  it("refuses a config that fails its type's schema at kubectl apply, with connectorctl's message", async () => {
    const bad = httpConnector(NS, "bad-timeout", "http://127.0.0.1:9");
    bad.spec.config = { ...bad.spec.config, timeoutMs: 50 };
    const file = join(certDir, "bad.yaml");
    writeFileSync(file, yaml.dump(bad));
    const offline = validateFiles([file], { catalogPaths: [join(projectRoot, "examples/types")] });
    expect(offline.problems).toHaveLength(1);
    const expected = `${offline.problems[0]!.path}: ${offline.problems[0]!.message}`;
    expect(formatProblem(offline.problems[0]!)).toContain(expected);

    const r = await cp.kubectl(["apply", "-f", file]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('admission webhook "validate.connectors.cynodeai.io" denied the request');
    expect(r.stderr).toContain(expected);
    expect(expected).toBe("spec.config.timeoutMs: must be >= 100");
    const get = await cp.kubectl(["get", "connector", "bad-timeout", "-n", NS]);
    expect(get.code).not.toBe(0); // never stored
  });

  it("refuses an unknown type and lets a good Connector through", async () => {
    const unknown = httpConnector(NS, "no-type", "http://127.0.0.1:9");
    unknown.spec.type = "gopher";
    const r1 = await cp.kubectl(["apply", "-f", "-"], { input: yaml.dump(unknown) });
    expect(r1.stderr).toContain('spec.type: connector type "gopher" does not exist');

    const good = httpConnector(NS, "good", "http://127.0.0.1:9");
    const r2 = await cp.kubectl(["apply", "-f", "-"], { input: yaml.dump(good) });
    expect(r2.stderr).toBe("");
    expect(r2.stdout).toContain("connector.cynodeai.io/good created");
  });

  it("warns about a deprecated version at apply time but accepts it", async () => {
    const old = httpConnector(NS, "old-version", "http://127.0.0.1:9");
    old.spec.typeVersion = 1;
    old.spec.config = { baseUrl: "http://127.0.0.1:9/hooks", method: "POST" };
    const r = await cp.kubectl(["apply", "-f", "-"], { input: yaml.dump(old) });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('Warning: connector type "http" version 1 is deprecated');
  });

  it("lets metadata-only updates through once the type's version is retired, so finalizers can go", async () => {
    const type = yaml.load(await kubectlOk(cp, ["get", "ctype", "http", "-o", "yaml"])) as {
      spec: { versions: { version: number; lifecycle: string }[] };
      metadata: Record<string, unknown>;
    };
    const copy = {
      apiVersion: "cynodeai.io/v1alpha1",
      kind: "ConnectorType",
      metadata: { name: "http-retiring" },
      spec: type.spec,
    };
    await apply(cp, copy);
    const c = httpConnector(NS, "soon-retired", "http://127.0.0.1:9");
    c.spec.type = "http-retiring";
    await apply(cp, c);
    copy.spec.versions.find((v) => v.version === 2)!.lifecycle = "retired";
    await apply(cp, copy);
    const label = await cp.kubectl(["label", "connector", "soon-retired", "-n", NS, "tier=gold"]);
    expect(label.stderr).toBe("");
    const edit = await cp.kubectl([
      "patch",
      "connector",
      "soon-retired",
      "-n",
      NS,
      "--type=merge",
      "-p",
      '{"spec":{"enabled":false}}',
    ]);
    expect(edit.stderr).toContain("is retired");
    await kubectlOk(cp, ["delete", "connector", "soon-retired", "-n", NS, "--timeout=60s"]);
  });
});
