// The Helm chart against the real helm (hack/testbin.sh helm, built from the Go module
// proxy) and the real test control plane: it lints, renders, is accepted by the API
// server (PodSecurity "restricted" included), and its ServiceAccount can do exactly what
// the controller needs (charts/connector-controller/rbac-expectations.yaml), proven with
// `kubectl auth can-i --as=system:serviceaccount:...`, and nothing it must not. The same for
// the gateway (gateway.enabled): its own Deployment, ServiceAccount and RBAC (the section
// `gateway` of rbac-expectations.yaml), and the real gateway run with those grants alone, the
// API server's audit log of its requests matched against them.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { request as httpsRequest } from "node:https";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { load, loadAll } from "js-yaml";
import { Counter, Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FLAGS, loadConfig } from "../../controller/src/config.ts";
import { startGateway } from "../../controller/src/gateway.ts";
import { GATEWAY_FLAGS, loadGatewayConfig } from "../../controller/src/gatewayConfig.ts";
import { kubeAccessReviews } from "../../controller/src/kube/accessReviews.ts";
import { createLogger } from "../../controller/src/observability/logger.ts";
import { startSecureMetricsServer } from "../../controller/src/observability/secureMetrics.ts";
import { REPO_ROOT, startControlPlane, type ControlPlane } from "../support/controlPlane.ts";
import { startPostgres } from "../support/postgres.ts";
import { runCommand, type CommandResult } from "../support/process.ts";
import { testbinDir } from "../support/testbin.ts";
import { eventually } from "../support/wait.ts";

const CHART = path.join(REPO_ROOT, "charts", "connector-controller");
const RELEASE = "connector-controller";
const NS = "connector-system";
const TENANT_NS = "team-a";
const SA = "connector-controller";
const AS = `system:serviceaccount:${NS}:${SA}`;
const FINGERPRINT_SECRET = "connector-controller-fingerprint-key";
const APPROVAL_SECRET = "connector-gateway-approval-key";
const GATEWAY = `${RELEASE}-gateway`;
const GW_AS = `system:serviceaccount:${NS}:${GATEWAY}`;
// Flags the Deployment passes that config.ts does not define yet (issue 7's lead adds them).
const COMING_FLAGS = [
  "leader-elect",
  "leader-election-id",
  "metrics-bind-address",
  "health-probe-bind-address",
  "webhook-port",
  "webhook-cert-dir",
];
// Values for a production-like release: external PostgreSQL, webhook on.
const PROD = ["--set", "database.existingSecret=connector-db", "--set", "webhook.enabled=true"];
/** PROD with the test CA as the webhook's caBundle (known once the control plane runs). */
const prodWithCa = (): string[] => [...PROD, "--set", `webhook.caBundle=${caBundle}`];
/** The gateway on, on the external database (it refuses the embedded one). */
const GW = ["--set", "database.existingSecret=connector-db", "--set", "gateway.enabled=true"];
// The API server's audit log of the gateway's ServiceAccount (and nothing else).
const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    users: ["${GW_AS}"]
  - level: None
`;

// ---------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------
type Result = CommandResult;

// Building helm from source takes about 5 minutes on 2 cores the first time (`make testbin`
// does it beforehand); a cached build answers at once.
const HELM_BUILD_TIMEOUT_MS = 20 * 60_000;

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [key: string]: unknown;
}

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
  nonResourceURLs?: string[];
}

interface Expectation {
  apiGroup: string;
  resource: string;
  resourceNames?: string[];
  verbs: string[];
  why: string;
}

interface Grants {
  clusterRole: Expectation[];
  role: Expectation[];
}
const EXPECTATIONS = load(fs.readFileSync(path.join(CHART, "rbac-expectations.yaml"), "utf8")) as Grants & {
  /** Only with metrics.secure.enabled. */
  metricsAuth?: Expectation[];
  /** The gateway's own ServiceAccount (gateway.enabled). */
  gateway: Grants;
};

interface SchemaNode {
  $ref?: string;
  properties?: Record<string, SchemaNode>;
  additionalProperties?: unknown;
}

/** One string per (apiGroup, resource, resourceName, verb) a set of rules grants. */
function grants(rules: PolicyRule[]): string[] {
  const out = new Set<string>();
  for (const r of rules) {
    expect(r.nonResourceURLs ?? [], "no non-resource URLs").toEqual([]);
    for (const g of r.apiGroups ?? [])
      for (const res of r.resources ?? [])
        for (const name of r.resourceNames?.length ? r.resourceNames : ["*any*"])
          for (const v of r.verbs) out.add(`${g || "core"}|${res}|${name}|${v}`);
  }
  return [...out].sort();
}

function expectedGrants(list: Expectation[]): string[] {
  return grants(
    list.map((e) => ({
      apiGroups: [e.apiGroup],
      resources: [e.resource],
      verbs: e.verbs,
      ...(e.resourceNames ? { resourceNames: e.resourceNames } : {}),
    })),
  );
}

const byKind = (docs: K8sObject[], kind: string): K8sObject[] => docs.filter((d) => d.kind === kind);
const one = (docs: K8sObject[], kind: string): K8sObject => {
  const found = byKind(docs, kind);
  expect(
    found.map((d) => d.metadata.name),
    kind,
  ).toHaveLength(1);
  return found[0]!;
};

interface Container {
  name: string;
  command?: string[];
  args: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  ports: Array<{ name: string; containerPort: number }>;
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  startupProbe?: { httpGet: { path: string; port: string } };
  lifecycle?: unknown;
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext: Record<string, unknown>;
  volumeMounts: Array<{ name: string; mountPath: string }>;
  image: string;
}
interface DeploymentSpec {
  replicas: number;
  strategy?: { type: string; rollingUpdate?: unknown };
  selector: { matchLabels: Record<string, string> };
  template: {
    metadata: { labels: Record<string, string> };
    spec: {
      serviceAccountName: string;
      automountServiceAccountToken?: boolean;
      securityContext: Record<string, unknown>;
      terminationGracePeriodSeconds?: number;
      affinity?: unknown;
      containers: Container[];
      volumes: Array<{
        name: string;
        emptyDir?: object;
        persistentVolumeClaim?: { claimName: string };
        secret?: { secretName: string };
      }>;
    };
  };
}
/** The controller's Deployment (the gateway's has a name of its own). */
const deploymentOf = (docs: K8sObject[]) =>
  one(
    byKind(docs, "Deployment").filter((d) => d.metadata.name !== GATEWAY),
    "Deployment",
  ).spec as DeploymentSpec;
const containerOf = (docs: K8sObject[]) => deploymentOf(docs).template.spec.containers[0]!;
const named = (docs: K8sObject[], kind: string, name: string): K8sObject => {
  const found = byKind(docs, kind).find((d) => d.metadata.name === name);
  expect(found, `${kind} ${name}`).toBeDefined();
  return found!;
};
const gatewayDeploymentOf = (docs: K8sObject[]) => named(docs, "Deployment", GATEWAY).spec as DeploymentSpec;
const gatewayContainerOf = (docs: K8sObject[]) => gatewayDeploymentOf(docs).template.spec.containers[0]!;
/** Objects the gateway brings (its component label), by kind/name. */
const gatewayObjects = (docs: K8sObject[]) =>
  docs
    .filter((d) => d.metadata.labels?.["app.kubernetes.io/component"]?.startsWith("gateway"))
    .map((d) => `${d.kind}/${d.metadata.name}`)
    .sort();

// ---------------------------------------------------------------------------------------
let helmBin: string;
let helmHome: string;
let cp: ControlPlane;
let caBundle: string;
let auditLog: string;

async function helm(args: string[]): Promise<Result> {
  return runCommand(helmBin, args, {
    timeoutMs: 120_000,
    env: {
      ...process.env,
      HELM_CACHE_HOME: path.join(helmHome, "cache"),
      HELM_CONFIG_HOME: path.join(helmHome, "config"),
      HELM_DATA_HOME: path.join(helmHome, "data"),
    },
  });
}

async function render(extra: string[] = [], opts: { includeCrds?: boolean } = {}): Promise<K8sObject[]> {
  const res = await helm([
    "template",
    RELEASE,
    CHART,
    "--namespace",
    NS,
    ...(opts.includeCrds ? ["--include-crds"] : []),
    ...extra,
  ]);
  expect(res.code, `helm template ${extra.join(" ")}:\n${res.stderr}`).toBe(0);
  return (loadAll(res.stdout) as Array<K8sObject | null>).filter((d): d is K8sObject => d !== null);
}

const renderText = async (extra: string[] = [], includeCrds = false): Promise<string> => {
  const res = await helm([
    "template",
    RELEASE,
    CHART,
    "--namespace",
    NS,
    ...(includeCrds ? ["--include-crds"] : []),
    ...extra,
  ]);
  expect(res.code, res.stderr).toBe(0);
  return res.stdout;
};

async function kubectlOk(args: string[], input?: string): Promise<Result> {
  const r = await cp.kubectl(args, input === undefined ? {} : { input });
  expect(r.code, `kubectl ${args.join(" ")}:\n${r.stderr}${r.stdout}`).toBe(0);
  return r;
}

beforeAll(async () => {
  helmBin = path.join(await testbinDir("helm", ["helm"], { timeoutMs: HELM_BUILD_TIMEOUT_MS }), "helm");
  helmHome = fs.mkdtempSync(path.join(os.tmpdir(), "connector-controller-helm-"));
  fs.writeFileSync(path.join(helmHome, "audit-policy.yaml"), AUDIT_POLICY);
  auditLog = path.join(helmHome, "audit.log");
  // The chart's own copies of the CRDs, installed first (what `helm install` does).
  cp = await startControlPlane({
    crdDir: path.join(CHART, "crds"),
    apiServerArgs: [
      `--audit-policy-file=${path.join(helmHome, "audit-policy.yaml")}`,
      `--audit-log-path=${auditLog}`,
      "--audit-log-format=json",
      "--audit-log-mode=blocking",
    ],
  });
  caBundle = Buffer.from(cp.caPem).toString("base64");
}, HELM_BUILD_TIMEOUT_MS + 300_000);

afterAll(async () => {
  await cp?.stop();
  if (helmHome) fs.rmSync(helmHome, { recursive: true, force: true });
});

describe("helm lint", () => {
  it("passes --strict with the default values", async () => {
    const r = await helm(["lint", "--strict", CHART]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain("0 chart(s) failed");
  });

  it("passes --strict with an external database, the webhook, a ServiceMonitor and sharding", async () => {
    const r = await helm([
      "lint",
      "--strict",
      CHART,
      ...PROD,
      "--set",
      `webhook.caBundle=${caBundle}`,
      "--set",
      "metrics.serviceMonitor.enabled=true",
      "--set",
      "watchNamespaces={team-a,team-b}",
      "--set",
      "labelSelector=shard=a",
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  it("passes --strict with the gateway on (TLS, a ServiceMonitor, its egress limited and rate limits)", async () => {
    const r = await helm([
      "lint",
      "--strict",
      CHART,
      ...GW,
      "--set",
      "gateway.tls.enabled=true",
      "--set",
      "metrics.serviceMonitor.enabled=true",
      "--set",
      "gateway.rateLimitPerUser=20/40",
      "--set",
      "gateway.watchNamespaces={team-a}",
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });
});

describe("helm template", () => {
  it("renders the controller, its RBAC, metrics Service, data volume, NetworkPolicy and the built-in catalog by default", async () => {
    const docs = await render();
    const kinds = docs.map((d) => d.kind).sort();
    expect(new Set(kinds)).toEqual(
      new Set([
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
        "PersistentVolumeClaim",
        "NetworkPolicy",
        "ConnectorType",
        "ConnectorPolicyTemplate",
      ]),
    );
    // The catalog is exactly examples/types and examples/policy-templates.
    const names = (dir: string) =>
      fs
        .readdirSync(path.join(REPO_ROOT, dir))
        .filter((f) => f.endsWith(".yaml"))
        .map((f) => (load(fs.readFileSync(path.join(REPO_ROOT, dir, f), "utf8")) as K8sObject).metadata.name)
        .sort();
    expect(
      byKind(docs, "ConnectorType")
        .map((d) => d.metadata.name)
        .sort(),
    ).toEqual(names("examples/types"));
    expect(
      byKind(docs, "ConnectorPolicyTemplate")
        .map((d) => d.metadata.name)
        .sort(),
    ).toEqual(names("examples/policy-templates"));
    for (const d of docs.filter((d) => d.kind === "ConnectorType")) {
      const source = load(
        fs.readFileSync(path.join(REPO_ROOT, "examples/types", `${d.metadata.name}.yaml`), "utf8"),
      );
      expect(d).toEqual(source);
    }
  });

  it("includes the CRDs of the top-level crds/ with --include-crds", async () => {
    const crds = byKind(await render([], { includeCrds: true }), "CustomResourceDefinition");
    const sources = fs
      .readdirSync(path.join(REPO_ROOT, "crds"))
      .filter((f) => f.endsWith(".yaml"))
      .map((f) => load(fs.readFileSync(path.join(REPO_ROOT, "crds", f), "utf8")) as K8sObject);
    expect(crds.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))).toEqual(
      sources.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)),
    );
  });

  it("runs 2 replicas with leader election on an external database, the URL from a Secret", async () => {
    const docs = await render(PROD.concat("--set", `webhook.caBundle=${caBundle}`));
    const d = deploymentOf(docs);
    const c = containerOf(docs);
    expect(d.replicas).toBe(2);
    expect(c.args).toContain("--leader-elect");
    expect(c.args).toContain("--metrics-bind-address=:8080");
    expect(c.args).toContain("--health-probe-bind-address=:8081");
    expect(c.args).toContain(`--leader-election-id=${RELEASE}`);
    expect(c.args).toContain("--webhook-port=9443");
    expect(c.args).toContain("--webhook-cert-dir=/tmp/k8s-webhook-server/serving-certs");
    expect(c.volumeMounts).toContainEqual({
      name: "webhook-tls",
      mountPath: "/tmp/k8s-webhook-server/serving-certs",
      readOnly: true,
    });
    expect(c.args.some((a) => a.startsWith("--data-dir"))).toBe(false);
    expect(c.args.join(" ")).not.toMatch(/postgres/);
    expect(c.env).toContainEqual({
      name: "DATABASE_URL",
      valueFrom: { secretKeyRef: { name: "connector-db", key: "url" } },
    });
    expect(one(docs, "PodDisruptionBudget").spec).toMatchObject({ maxUnavailable: 1 });
  });

  it("runs ONE replica on the embedded PGlite database, on a kept PVC by default or an emptyDir when asked", async () => {
    const docs = await render(["--set", "database.embedded.persistence.enabled=false"]);
    const d = deploymentOf(docs);
    const c = containerOf(docs);
    expect(d.replicas).toBe(1);
    expect(byKind(docs, "PodDisruptionBudget")).toEqual([]);
    expect(c.args).toContain("--data-dir=/var/lib/connector-controller/pglite");
    expect(c.env?.some((e) => e.name === "DATABASE_URL")).toBe(false);
    expect(c.volumeMounts).toContainEqual({ name: "data", mountPath: "/var/lib/connector-controller" });
    expect(d.template.spec.volumes).toContainEqual({ name: "data", emptyDir: {} });
    expect(byKind(docs, "PersistentVolumeClaim")).toEqual([]);

    for (const pvc of [
      await render(),
      await render(["--set", "database.embedded.persistence.enabled=true"]),
    ]) {
      const claim = one(pvc, "PersistentVolumeClaim") as K8sObject & {
        spec: { accessModes: string[]; resources: { requests: { storage: string } } };
      };
      expect(claim.metadata.name).toBe(`${RELEASE}-data`);
      // Kept on `helm uninstall`: the instance ids and the audit trail outlive the release.
      expect(claim.metadata.annotations?.["helm.sh/resource-policy"]).toBe("keep");
      expect(claim.spec).toMatchObject({
        accessModes: ["ReadWriteOnce"],
        resources: { requests: { storage: "1Gi" } },
      });
      expect(deploymentOf(pvc).replicas).toBe(1);
      expect(deploymentOf(pvc).strategy).toEqual({ type: "Recreate" });
      expect(deploymentOf(pvc).template.spec.volumes).toContainEqual({
        name: "data",
        persistentVolumeClaim: { claimName: `${RELEASE}-data` },
      });
      // One replica, and leader election still on (a rolling restart never runs two writers).
      expect(containerOf(pvc).args).toContain("--leader-elect");
    }
    // An existing claim is used as it is, and the chart creates none.
    const existing = await render(["--set", "database.embedded.persistence.existingClaim=my-data"]);
    expect(byKind(existing, "PersistentVolumeClaim")).toEqual([]);
    expect(deploymentOf(existing).template.spec.volumes).toContainEqual({
      name: "data",
      persistentVolumeClaim: { claimName: "my-data" },
    });
  });

  it("passes only flags the controller knows (config.ts, plus the ones issue 7 adds)", async () => {
    const docs = await render([
      ...PROD,
      "--set",
      `webhook.caBundle=${caBundle}`,
      "--set",
      "watchNamespaces={team-a,team-b}",
      "--set",
      "labelSelector=shard in (a\\,b)",
      "--set",
      "enableFeatures={beta-types}",
      "--set",
      "logLevel=debug",
      "--set",
      "concurrency=16",
    ]);
    const args = containerOf(docs).args;
    const names = args.map((a) => /^--([a-z-]+)/.exec(a)?.[1] ?? a);
    const unknown = names.filter((n) => !(n in FLAGS));
    expect(unknown.filter((n) => !COMING_FLAGS.includes(n))).toEqual([]);
    // Once config.ts defines them all, the controller's own parser accepts the args as they are.
    if (unknown.length === 0) expect(() => loadConfig(args, {})).not.toThrow();
    expect(args).toEqual(
      expect.arrayContaining([
        "--concurrency=16",
        "--log-level=debug",
        "--watch-namespaces=team-a,team-b",
        "--label-selector=shard in (a,b)",
        "--enable-features=beta-types",
        "--resync-period=10m",
      ]),
    );
    // The webhook only sees the namespaces this shard reconciles.
    const vwc = one(docs, "ValidatingWebhookConfiguration") as unknown as {
      webhooks: Array<{ namespaceSelector: unknown }>;
    };
    expect(vwc.webhooks[0]!.namespaceSelector).toEqual({
      matchExpressions: [
        { key: "kubernetes.io/metadata.name", operator: "In", values: ["team-a", "team-b"] },
      ],
    });
  });

  it("bounds Node's heap through NODE_OPTIONS, and leaves it out when nodeOptions is empty", async () => {
    const env = (docs: Awaited<ReturnType<typeof render>>) =>
      ((containerOf(docs) as unknown as { env?: { name: string; value?: string }[] }).env ?? []).filter(
        (e) => e.name === "NODE_OPTIONS",
      );
    const withCaBundle = PROD.concat("--set", `webhook.caBundle=${caBundle}`);
    expect(env(await render(withCaBundle))).toEqual([
      { name: "NODE_OPTIONS", value: "--max-old-space-size=160 --max-semi-space-size=8" },
    ]);
    expect(env(await render(withCaBundle.concat("--set", "nodeOptions=")))).toEqual([]);
  });

  it("locks the container down: non-root, read-only root, no privilege escalation, no capabilities", async () => {
    const docs = await render(PROD.concat("--set", `webhook.caBundle=${caBundle}`));
    const pod = deploymentOf(docs).template.spec;
    const c = containerOf(docs);
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(c.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(pod.volumes).toContainEqual({ name: "tmp", emptyDir: {} });
    expect(c.volumeMounts).toContainEqual({ name: "tmp", mountPath: "/tmp" });
    expect(c.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "health" });
    expect(c.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "health" });
    expect(c.ports).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: "metrics", containerPort: 8080 }),
        expect.objectContaining({ name: "health", containerPort: 8081 }),
        expect.objectContaining({ name: "webhook", containerPort: 9443 }),
      ]),
    );
    expect(c.resources.requests).toBeDefined();
    expect(c.resources.limits?.memory).toBeDefined();
    expect(c.image).toBe("ghcr.io/cynodeai/connector-controller:0.1.0");
    expect(pod.serviceAccountName).toBe(SA);
  });

  it("renders the ValidatingWebhookConfiguration for Connector CREATE/UPDATE with the chosen failure policy", async () => {
    const docs = await render([
      ...PROD,
      "--set",
      `webhook.caBundle=${caBundle}`,
      "--set",
      "webhook.failurePolicy=Ignore",
    ]);
    const vwc = one(docs, "ValidatingWebhookConfiguration") as unknown as {
      webhooks: Array<Record<string, unknown>>;
    };
    expect(vwc.webhooks).toHaveLength(1);
    expect(vwc.webhooks[0]).toMatchObject({
      failurePolicy: "Ignore",
      sideEffects: "None",
      admissionReviewVersions: ["v1"],
      clientConfig: {
        service: { name: `${RELEASE}-webhook`, namespace: NS, path: "/validate-connector", port: 443 },
        caBundle,
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
    });
    const svc = byKind(docs, "Service").find((s) => s.metadata.name === `${RELEASE}-webhook`);
    expect((svc?.spec as { ports: unknown[] }).ports).toEqual([
      { name: "webhook", port: 443, targetPort: "webhook", protocol: "TCP" },
    ]);
    // Without cert-manager and without a CA bundle it refuses to render, rather than
    // installing a webhook the API server cannot call.
    const bad = await helm(["template", RELEASE, CHART, "-n", NS, ...PROD]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/webhook\.caBundle|certManager/);
  });

  it("uses cert-manager for the webhook certificate when asked", async () => {
    const docs = await render([...PROD, "--set", "webhook.certManager.enabled=true"]);
    const vwc = one(docs, "ValidatingWebhookConfiguration");
    expect(vwc.metadata.annotations?.["cert-manager.io/inject-ca-from"]).toBe(`${NS}/${RELEASE}-webhook`);
    const cert = one(docs, "Certificate").spec as { secretName: string; dnsNames: string[] };
    expect(cert.secretName).toBe(`${RELEASE}-webhook-tls`);
    expect(cert.dnsNames).toContain(`${RELEASE}-webhook.${NS}.svc`);
    expect(one(docs, "Issuer").spec).toEqual({ selfSigned: {} });
  });

  it("renders a ServiceMonitor for the metrics Service only when enabled", async () => {
    expect(byKind(await render(), "ServiceMonitor")).toEqual([]);
    const docs = await render(["--set", "metrics.serviceMonitor.enabled=true"]);
    const sm = one(docs, "ServiceMonitor").spec as {
      selector: { matchLabels: Record<string, string> };
      endpoints: Array<{ port: string; path: string }>;
    };
    expect(sm.endpoints).toEqual([expect.objectContaining({ port: "metrics", path: "/metrics" })]);
    const metricsSvc = byKind(docs, "Service").find((s) => s.metadata.name === `${RELEASE}-metrics`)!;
    expect(metricsSvc.metadata.labels).toMatchObject(sm.selector.matchLabels);
  });

  it("renders a SecretProvider from the Vault defaults when asked", async () => {
    const docs = await render([
      "--set",
      "vault.secretProvider.create=true",
      "--set",
      "vault.address=https://vault.vault.svc:8200",
    ]);
    expect(one(docs, "SecretProvider")).toMatchObject({
      metadata: { name: "vault" },
      spec: {
        vault: {
          address: "https://vault.vault.svc:8200",
          kv: { mount: "secret", version: 2 },
          pathTemplate: "connectors/{namespace}/{name}",
          auth: { kubernetes: { mountPath: "kubernetes", role: "connectors", audiences: ["vault"] } },
        },
      },
    });
  });

  it("renders the Vault CA from a ConfigMap or Secret of the release namespace, granting get on that one object", async () => {
    const vault = ["--set", "vault.secretProvider.create=true", "--set", "vault.address=https://vault:8200"];
    for (const kind of ["ConfigMap", "Secret"] as const) {
      const docs = await render([
        ...vault,
        "--set",
        `vault.caBundleRef.kind=${kind}`,
        "--set",
        "vault.caBundleRef.name=vault-ca",
      ]);
      expect((one(docs, "SecretProvider").spec as { vault: unknown }).vault).toMatchObject({
        caBundleRef: { kind, name: "vault-ca", key: "ca.crt" },
      });
      expect((one(docs, "SecretProvider").spec as { vault: object }).vault).not.toHaveProperty("caBundle");
      const role = one(docs, "Role") as unknown as { rules: PolicyRule[] };
      const resource = kind === "Secret" ? "secrets" : "configmaps";
      expect(grants(role.rules)).toEqual(
        [...expectedGrants(EXPECTATIONS.role), `core|${resource}|vault-ca|get`].sort(),
      );
    }
    const both = await helm([
      "template",
      RELEASE,
      CHART,
      "-n",
      NS,
      ...vault,
      "--set",
      "vault.caBundle=PEM",
      "--set",
      "vault.caBundleRef.name=vault-ca",
    ]);
    expect(both.code).not.toBe(0);
    expect(both.stderr).toContain("set at most one of vault.caBundle and vault.caBundleRef.name");
  });

  it("renders a kubernetes SecretProvider when asked, and impersonates only the reader service accounts named", async () => {
    const docs = await render([
      "--set",
      "kubernetesSecrets.secretProvider.create=true",
      "--set",
      "kubernetesSecrets.readerServiceAccounts={team-reader,connector-reader}",
      "--set",
      "kubernetesSecrets.secretProvider.allowedNamespaces={team-a}",
    ]);
    expect(one(docs, "SecretProvider")).toMatchObject({
      metadata: { name: "kubernetes-secrets" },
      spec: { kubernetes: { serviceAccountName: "team-reader" }, allowedNamespaces: ["team-a"] },
    });
    const impersonation = (d: K8sObject[]) =>
      grants((one(d, "ClusterRole") as unknown as { rules: PolicyRule[] }).rules).filter((g) =>
        g.endsWith("|impersonate"),
      );
    expect(impersonation(docs)).toEqual([
      "core|serviceaccounts|connector-reader|impersonate",
      "core|serviceaccounts|team-reader|impersonate",
    ]);
    // Without kubernetes providers, no impersonation at all.
    expect(impersonation(await render(["--set", "kubernetesSecrets.readerServiceAccounts=null"]))).toEqual(
      [],
    );
  });

  it("grants in its ClusterRole and Role exactly the rules of rbac-expectations.yaml", async () => {
    const docs = await render(PROD.concat("--set", `webhook.caBundle=${caBundle}`));
    const clusterRole = one(docs, "ClusterRole") as unknown as { rules: PolicyRule[] };
    const role = one(docs, "Role") as unknown as { metadata: { namespace: string }; rules: PolicyRule[] };
    expect(role.metadata.namespace).toBe(NS);
    expect(grants(clusterRole.rules)).toEqual(expectedGrants(EXPECTATIONS.clusterRole));
    expect(grants(role.rules)).toEqual(expectedGrants(EXPECTATIONS.role));
    for (const r of [...clusterRole.rules, ...role.rules]) {
      expect(r.verbs).not.toContain("*");
      expect(r.resources).not.toContain("*");
      expect(r.apiGroups).not.toContain("*");
    }
    expect(grants(clusterRole.rules).some((g) => g.startsWith("core|secrets|"))).toBe(false);
    // Both bindings name the chart's ServiceAccount; there are no others.
    for (const b of [one(docs, "ClusterRoleBinding"), one(docs, "RoleBinding")]) {
      expect(b.subjects).toEqual([{ kind: "ServiceAccount", name: SA, namespace: NS }]);
    }
  });
});

describe("values.schema.json", () => {
  it("refuses a misspelt value and a value of the wrong type at helm template, naming it", async () => {
    const typo = await helm(["template", RELEASE, CHART, "-n", NS, "--set", "concurency=8"]);
    expect(typo.code).not.toBe(0);
    expect(typo.stderr).toMatch(/concurency/);
    expect(typo.stderr).toMatch(/additional propert/i);
    const wrongType = await helm(["template", RELEASE, CHART, "-n", NS, "--set", "replicaCount=abc"]);
    expect(wrongType.code).not.toBe(0);
    expect(wrongType.stderr).toMatch(/replicaCount/);
    expect(wrongType.stderr).toMatch(/integer/);
    // Nested keys, enums and formats too.
    for (const bad of [
      "database.embedded.persistance.enabled=true",
      "logLevel=verbose",
      "resyncPeriod=ten-minutes",
      "webhook.failurePolicy=fail",
      "networkPolicy.egress.enable=true",
    ]) {
      const r = await helm(["template", RELEASE, CHART, "-n", NS, "--set", bad]);
      expect({ bad, code: r.code === 0 ? 0 : 1 }).toEqual({ bad, code: 1 });
      expect(r.stderr, bad).toMatch(/values don't meet the specifications of the schema/);
    }
    // The right spellings render.
    await render(["--set", "concurrency=8", "--set", "replicaCount=3", "--set", "logLevel=debug"]);
  });

  it("refuses misspelt and malformed gateway values, naming them", async () => {
    for (const [bad, name] of [
      ["gateway.enable=true", "enable"],
      ["gateway.replicas=3", "replicas"],
      ["gateway.tls.enable=true", "enable"],
      ["gateway.networkPolicy.egress.extras=[]", "extras"],
      ["gateway.replicaCount=two", "replicaCount"],
      ["gateway.replicaCount=0", "replicaCount"],
      ["gateway.logLevel=verbose", "logLevel"],
      ["gateway.rateLimitPerUser=fast", "rateLimitPerUser"],
      ["gateway.rateLimitPerUser=0/10", "rateLimitPerUser"],
      ["gateway.rateLimitPerUser=20/0", "rateLimitPerUser"],
      ["gateway.idempotencyTtl=a-day", "idempotencyTtl"],
      ["gateway.maxRetries=11", "maxRetries"],
      ["gateway.service.type=Ingress", "type"],
    ]) {
      const r = await helm(["template", RELEASE, CHART, "-n", NS, ...GW, "--set", bad!]);
      expect({ bad, code: r.code === 0 ? 0 : 1 }).toEqual({ bad, code: 1 });
      expect(r.stderr, bad).toMatch(/values don't meet the specifications of the schema/);
      expect(r.stderr, bad).toContain(name);
    }
  });

  it("covers every value of values.yaml (no key the schema does not name)", () => {
    const values = load(fs.readFileSync(path.join(CHART, "values.yaml"), "utf8")) as Record<string, unknown>;
    const schema = JSON.parse(fs.readFileSync(path.join(CHART, "values.schema.json"), "utf8")) as SchemaNode;
    const defs = (schema as { definitions?: Record<string, SchemaNode> }).definitions ?? {};
    const resolve = (s: SchemaNode): SchemaNode =>
      s.$ref ? resolve(defs[s.$ref.replace("#/definitions/", "")]!) : s;
    const missing: string[] = [];
    const walk = (v: unknown, s: SchemaNode, at: string) => {
      const node = resolve(s);
      if (!v || typeof v !== "object" || Array.isArray(v)) return;
      if (!node.properties) return; // a free-form Kubernetes structure or a string map
      expect(node.additionalProperties, `${at} refuses unknown keys`).toBe(false);
      for (const [k, child] of Object.entries(v)) {
        const cs = node.properties[k];
        if (!cs) missing.push(`${at}${k}`);
        else walk(child, cs, `${at}${k}.`);
      }
    };
    walk(values, schema, "");
    expect(missing).toEqual([]);
  });
});

describe("NetworkPolicy", () => {
  interface Rule {
    ports?: Array<{ port: string | number; protocol: string }>;
    from?: unknown[];
    to?: Array<{ ipBlock?: { cidr: string }; namespaceSelector?: unknown; podSelector?: unknown }>;
  }
  interface NetworkPolicySpec {
    podSelector: { matchLabels: Record<string, string> };
    policyTypes: string[];
    ingress: Rule[];
    egress?: Rule[];
  }
  const policyOf = (docs: K8sObject[]) =>
    one(docs, "NetworkPolicy") as K8sObject & { spec: NetworkPolicySpec };

  it("admits only the metrics and health ports by default, and the webhook's when it is on", async () => {
    const docs = await render();
    const np = policyOf(docs);
    expect(np.spec.policyTypes).toEqual(["Ingress"]);
    expect(np.spec.ingress.map((r) => r.ports)).toEqual([
      [{ port: "metrics", protocol: "TCP" }],
      [{ port: "health", protocol: "TCP" }],
    ]);
    // It selects exactly the controller's pods.
    const podLabels = (
      one(docs, "Deployment").spec as { template: { metadata: { labels: Record<string, string> } } }
    ).template.metadata.labels;
    expect(podLabels).toMatchObject(np.spec.podSelector.matchLabels);
    // Every port it names is a port of the container.
    const named = new Set(containerOf(docs).ports.map((p) => p.name));
    for (const r of np.spec.ingress) for (const p of r.ports ?? []) expect(named).toContain(p.port);

    const withWebhook = policyOf(await render(prodWithCa()));
    expect(withWebhook.spec.ingress.map((r) => r.ports?.[0]?.port)).toEqual(["metrics", "health", "webhook"]);
    const scrapers = policyOf(
      await render([
        "--set-json",
        'networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]',
      ]),
    );
    expect(scrapers.spec.ingress[0]!.from).toEqual([
      { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } },
    ]);
    expect(byKind(await render(["--set", "networkPolicy.enabled=false"]), "NetworkPolicy")).toEqual([]);
  });

  it("limits egress to DNS, the API server, the database, Vault and the catalog's addresses when asked", async () => {
    // A copy of the chart whose catalog declares an IP address, as a type may.
    const chartCopy = path.join(helmHome, "chart-with-ip-type");
    fs.cpSync(CHART, chartCopy, { recursive: true });
    fs.writeFileSync(
      path.join(chartCopy, "files/catalog/types/zz-ip.yaml"),
      [
        "apiVersion: cynodeai.io/v1alpha1",
        "kind: ConnectorType",
        "metadata: { name: zz-ip }",
        "spec:",
        "  displayName: IP",
        "  displayNameAr: عنوان",
        "  dataClassification: internal",
        "  approvalPolicy: auto",
        "  versions:",
        "    - version: 1",
        "      schemaVersion: 1.0.0",
        "      lifecycle: approved",
        "      configSchema: { type: object }",
        "      operations: []",
        "      healthProbe: { kind: none }",
        "      egressAllowlist: [203.0.113.7, 127.0.0.1, localhost, api.example.net, '2001:db8::5']",
        "",
      ].join("\n"),
    );
    const res = await helm([
      "template",
      RELEASE,
      chartCopy,
      "-n",
      NS,
      ...prodWithCa(),
      "--set",
      "networkPolicy.egress.enabled=true",
      "--set",
      "networkPolicy.egress.apiServer.cidrs={10.96.0.1/32}",
      "--set-json",
      'networkPolicy.egress.database.to=[{"ipBlock":{"cidr":"10.20.0.0/16"}}]',
    ]);
    expect(res.code, res.stderr).toBe(0);
    const np = policyOf(
      (loadAll(res.stdout) as Array<K8sObject | null>).filter((d): d is K8sObject => d !== null),
    );
    expect(np.spec.policyTypes).toEqual(["Ingress", "Egress"]);
    const egress = np.spec.egress!;
    expect(egress).toContainEqual({
      to: [{ namespaceSelector: {}, podSelector: { matchLabels: { "k8s-app": "kube-dns" } } }],
      ports: [
        { port: 53, protocol: "UDP" },
        { port: 53, protocol: "TCP" },
      ],
    });
    expect(egress).toContainEqual({
      to: [{ ipBlock: { cidr: "10.96.0.1/32" } }],
      ports: [
        { port: 443, protocol: "TCP" },
        { port: 6443, protocol: "TCP" },
      ],
    });
    expect(egress).toContainEqual({
      to: [{ ipBlock: { cidr: "10.20.0.0/16" } }],
      ports: [{ port: 5432, protocol: "TCP" }],
    });
    expect(egress).toContainEqual({ ports: [{ port: 8200, protocol: "TCP" }] });
    // The IP literals become ipBlocks (loopback needs none); host names cannot, and are listed.
    expect(egress).toContainEqual({
      to: [{ ipBlock: { cidr: "203.0.113.7/32" } }, { ipBlock: { cidr: "2001:db8::5/128" } }],
    });
    expect(np.metadata.annotations?.["cynodeai.io/egress-hosts"]).toContain("api.example.net");
    expect(np.metadata.annotations?.["cynodeai.io/egress-hosts"]).not.toContain("localhost");
    // The embedded database needs no database rule.
    const embedded = policyOf(await render(["--set", "networkPolicy.egress.enabled=true"]));
    expect(embedded.spec.egress!.some((r) => r.ports?.some((p) => p.port === 5432))).toBe(false);
    // And it is accepted by the API server as a NetworkPolicy.
    const { namespace: _ns, ...meta } = np.metadata;
    await kubectlOk(
      ["apply", "--dry-run=server", "-n", "default", "-f", "-"],
      JSON.stringify({ ...np, metadata: meta }),
    );
  });
});

describe("webhook objectSelector (sharding)", () => {
  const selectorOf = async (extra: string[]) => {
    const docs = await render([...prodWithCa(), ...extra]);
    const vwc = one(docs, "ValidatingWebhookConfiguration") as unknown as {
      webhooks: Array<{ objectSelector?: unknown }>;
    };
    return vwc.webhooks[0]!.objectSelector;
  };

  it("matches the release's label selector, so each shard validates only its own Connectors", async () => {
    expect(await selectorOf([])).toBeUndefined();
    expect(await selectorOf(["--set", "labelSelector=shard in (a\\,b)"])).toEqual({
      matchExpressions: [{ key: "shard", operator: "In", values: ["a", "b"] }],
    });
    expect(
      await selectorOf([
        "--set",
        "labelSelector=cynodeai.io/shard=a\\,!legacy\\,tier!=batch\\,env\\,zone notin (x\\,y)",
      ]),
    ).toEqual({
      matchExpressions: [
        { key: "cynodeai.io/shard", operator: "In", values: ["a"] },
        { key: "legacy", operator: "DoesNotExist" },
        { key: "tier", operator: "NotIn", values: ["batch"] },
        { key: "env", operator: "Exists" },
        { key: "zone", operator: "NotIn", values: ["x", "y"] },
      ],
    });
    // An explicit objectSelector wins.
    expect(
      await selectorOf([
        "--set",
        "labelSelector=shard=a",
        "--set",
        "webhook.objectSelector.matchLabels.team=ops",
      ]),
    ).toEqual({ matchLabels: { team: "ops" } });
  });

  it("is accepted by the API server, and refuses a selector it cannot translate", async () => {
    const docs = await render([...prodWithCa(), "--set", "labelSelector=shard=a"]);
    await kubectlOk(
      ["apply", "--dry-run=server", "-f", "-"],
      JSON.stringify(one(docs, "ValidatingWebhookConfiguration")),
    );
    const bad = await helm([
      "template",
      RELEASE,
      CHART,
      "-n",
      NS,
      ...prodWithCa(),
      "--set",
      "labelSelector=shard=~a",
    ]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/webhook\.objectSelector/);
  });
});

describe("secure metrics", () => {
  it("renders HTTPS metrics, the review grants and a reader role only when asked", async () => {
    const plain = await render();
    expect(containerOf(plain).args).not.toContain("--metrics-secure");
    expect(byKind(plain, "ClusterRole").map((r) => r.metadata.name)).toEqual([RELEASE]);

    const docs = await render([
      "--set",
      "metrics.secure.enabled=true",
      "--set",
      "metrics.secure.certSecretName=metrics-tls",
      "--set",
      "metrics.serviceMonitor.enabled=true",
    ]);
    const c = containerOf(docs);
    expect(c.args).toEqual(
      expect.arrayContaining([
        "--metrics-secure",
        "--metrics-cert-dir=/tmp/k8s-metrics-server/serving-certs",
      ]),
    );
    expect(c.volumeMounts).toContainEqual({
      name: "metrics-tls",
      mountPath: "/tmp/k8s-metrics-server/serving-certs",
      readOnly: true,
    });
    const roles = byKind(docs, "ClusterRole") as unknown as Array<K8sObject & { rules: PolicyRule[] }>;
    const auth = roles.find((r) => r.metadata.name === `${RELEASE}-metrics-auth`)!;
    expect(grants(auth.rules)).toEqual(expectedGrants(EXPECTATIONS.metricsAuth!));
    const reader = roles.find((r) => r.metadata.name === `${RELEASE}-metrics-reader`)!;
    expect(reader.rules).toEqual([{ nonResourceURLs: ["/metrics"], verbs: ["get"] }]);
    const binding = byKind(docs, "ClusterRoleBinding").find(
      (b) => b.metadata.name === `${RELEASE}-metrics-auth`,
    )!;
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: SA, namespace: NS }]);
    const sm = one(docs, "ServiceMonitor").spec as { endpoints: Array<Record<string, unknown>> };
    expect(sm.endpoints[0]).toMatchObject({ scheme: "https", path: "/metrics" });
    // Every flag is one the controller knows.
    const names = c.args.map((a) => /^--([a-z-]+)/.exec(a)?.[1] ?? a);
    expect(names.filter((n) => !(n in FLAGS))).toEqual([]);
  });
});

describe("the gateway", () => {
  it("is off by default, and refused on the embedded database with the reason and the fix", async () => {
    expect(gatewayObjects(await render())).toEqual([]);
    expect(gatewayObjects(await render(prodWithCa()))).toEqual([]);
    for (const extra of [[], ["--set", "database.embedded.persistence.enabled=false"]]) {
      const r = await helm(["template", RELEASE, CHART, "-n", NS, "--set", "gateway.enabled=true", ...extra]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain("gateway.enabled=true needs an external PostgreSQL");
      expect(r.stderr).toContain("set database.existingSecret");
      expect(r.stderr).toMatch(/cannot open the controller's embedded PGlite database/);
    }
  });

  it("renders its own Deployment, ServiceAccount, RBAC, Services, PodDisruptionBudget and NetworkPolicy", async () => {
    const docs = await render(GW);
    expect(gatewayObjects(docs)).toEqual(
      [
        `ClusterRole/${GATEWAY}`,
        `ClusterRoleBinding/${GATEWAY}`,
        `Deployment/${GATEWAY}`,
        `NetworkPolicy/${GATEWAY}`,
        `PodDisruptionBudget/${GATEWAY}`,
        `Role/${GATEWAY}`,
        `RoleBinding/${GATEWAY}`,
        `Service/${GATEWAY}`,
        `Service/${GATEWAY}-metrics`,
        `ServiceAccount/${GATEWAY}`,
      ].sort(),
    );
    // The controller's objects are what they were without it.
    const without = await render(PROD.slice(0, 2));
    const notGateway = (d: K8sObject[]) =>
      d.filter((o) => !o.metadata.labels?.["app.kubernetes.io/component"]?.startsWith("gateway"));
    expect(notGateway(docs)).toEqual(without);
  });

  it("runs 2 replicas of the gateway process from the controller's image, on the controller's database Secret", async () => {
    const docs = await render(GW);
    const d = gatewayDeploymentOf(docs);
    const c = gatewayContainerOf(docs);
    expect(d.replicas).toBe(2);
    // Never below the replicas asked for while rolling.
    expect(d.strategy).toEqual({ type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
    expect(c.name).toBe("gateway");
    expect(c.image).toBe(containerOf(docs).image);
    // The image's entrypoint is the controller (Dockerfile); the gateway is the compiled
    // controller/src/gateway.ts (tsconfig.build.json keeps the path under dist/).
    expect(c.command).toEqual(["node", "dist/controller/src/gateway.js"]);
    expect(fs.existsSync(path.join(REPO_ROOT, "controller/src/gateway.ts"))).toBe(true);
    expect(fs.readFileSync(path.join(REPO_ROOT, "Dockerfile"), "utf8")).toMatch(
      /^COPY --from=build \/src\/dist\/ dist\/$/m,
    );
    expect(c.env).toContainEqual({
      name: "DATABASE_URL",
      valueFrom: { secretKeyRef: { name: "connector-db", key: "url" } },
    });
    // --key-namespace (env POD_NAMESPACE): the release namespace, where the HMAC keys live.
    expect(c.env).toContainEqual({
      name: "POD_NAMESPACE",
      valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } },
    });
    expect(c.args.join(" ")).not.toMatch(/postgres/);
    // Its pods are not the controller's, and the other way round.
    const labels = d.template.metadata.labels;
    expect(labels["app.kubernetes.io/component"]).toBe("gateway");
    expect(labels).toMatchObject(d.selector.matchLabels);
    expect(deploymentOf(docs).template.metadata.labels).not.toMatchObject(d.selector.matchLabels);
    expect(labels).not.toMatchObject(deploymentOf(docs).selector.matchLabels);
    // Spread across nodes.
    expect(d.template.spec.affinity).toMatchObject({
      podAntiAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          {
            podAffinityTerm: {
              topologyKey: "kubernetes.io/hostname",
              labelSelector: { matchLabels: d.selector.matchLabels },
            },
          },
        ],
      },
    });
    // The PodDisruptionBudget keeps all but one replica through a drain, and selects exactly its pods.
    const pdb = named(docs, "PodDisruptionBudget", GATEWAY).spec as {
      maxUnavailable: number;
      selector: { matchLabels: Record<string, string> };
    };
    expect(pdb.maxUnavailable).toBe(1);
    expect(pdb.selector.matchLabels).toEqual(d.selector.matchLabels);

    const three = await render([...GW, "--set", "gateway.replicaCount=3"]);
    expect(gatewayDeploymentOf(three).replicas).toBe(3);
    const single = await render([...GW, "--set", "gateway.replicaCount=1"]);
    expect(gatewayDeploymentOf(single).replicas).toBe(1);
    expect(byKind(single, "PodDisruptionBudget").map((p) => p.metadata.name)).not.toContain(GATEWAY);
    const off = await render([...GW, "--set", "gateway.podDisruptionBudget.enabled=false"]);
    expect(byKind(off, "PodDisruptionBudget").map((p) => p.metadata.name)).not.toContain(GATEWAY);
  });

  it("passes only flags the gateway knows (GATEWAY_FLAGS), which its own parser accepts as they are", async () => {
    const docs = await render([
      ...GW,
      "--set",
      "gateway.tls.enabled=true",
      "--set",
      "gateway.watchNamespaces={team-a,team-b}",
      "--set",
      "gateway.rateLimitPerUser=20/40",
      "--set",
      "gateway.rateLimitPerProject=0.5/10",
      "--set",
      "gateway.logLevel=debug",
      "--set",
      "gateway.maxInFlight=64",
      "--set",
      "gateway.idempotencyTtl=12h",
      "--set",
      "gateway.maxRetries=3",
      "--set",
      "gateway.maxResultBytes=1048576",
      "--set",
      "gateway.maxBodyBytes=2097152",
      "--set",
      "gateway.jobConcurrency=4",
      "--set",
      "gateway.reviewCacheTtl=5s",
      "--set",
      "gateway.breakerThreshold=5",
      "--set",
      "gateway.breakerCooldown=2m",
      "--set",
      "gateway.port=9000",
      "--set",
      "gateway.metrics.port=9001",
      "--set",
      "gateway.health.port=9002",
      "--set",
      "gateway.extraArgs={--log-format=console}",
    ]);
    const args = gatewayContainerOf(docs).args;
    const names = args.map((a) => /^--([a-z-]+)/.exec(a)?.[1] ?? a);
    expect(names.filter((n) => !(n in GATEWAY_FLAGS))).toEqual([]);
    // The environment the chart gives it: POD_NAMESPACE is --key-namespace's variable.
    const config = loadGatewayConfig(args, { POD_NAMESPACE: NS });
    expect(config).toMatchObject({
      bindAddress: { port: 9000 },
      metricsAddress: { port: 9001 },
      healthAddress: { port: 9002 },
      tlsCertDir: "/tmp/connector-gateway/serving-certs",
      logLevel: "debug",
      logFormat: "console",
      watchNamespaces: ["team-a", "team-b"],
      maxInFlight: 64,
      perUser: { rps: 20, burst: 40 },
      perProject: { rps: 0.5, burst: 10 },
      idempotencyTtlMs: 12 * 3600_000,
      maxRetries: 3,
      maxResultBytes: 1048576,
      maxBodyBytes: 2097152,
      jobConcurrency: 4,
      reviewCacheTtlMs: 5000,
      breakerThreshold: 5,
      breakerCooldownMs: 120_000,
      keyNamespace: NS,
    });
    // The defaults are the gateway's own defaults, and the ports match the container's.
    const plain = await render(GW);
    const defaults = gatewayContainerOf(plain);
    expect(loadGatewayConfig(defaults.args, {})).toEqual(loadGatewayConfig([], {}));
    expect(defaults.args.some((a) => a.startsWith("--tls-cert-dir") || a.startsWith("--rate-limit"))).toBe(
      false,
    );
    expect(defaults.ports).toEqual([
      { name: "api", containerPort: 8090, protocol: "TCP" },
      { name: "metrics", containerPort: 8082, protocol: "TCP" },
      { name: "health", containerPort: 8083, protocol: "TCP" },
    ]);
    // It serves the namespaces the controller watches, unless told otherwise.
    const shard = gatewayContainerOf(await render([...GW, "--set", "watchNamespaces={team-c}"]));
    expect(shard.args).toContain("--watch-namespaces=team-c");
  });

  it("locks the container down as the controller's: non-root, read-only root, no privilege escalation, no capabilities", async () => {
    const docs = await render(GW);
    const pod = gatewayDeploymentOf(docs).template.spec;
    const c = gatewayContainerOf(docs);
    expect(pod.securityContext).toEqual(deploymentOf(docs).template.spec.securityContext);
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(c.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(pod.volumes).toContainEqual({ name: "tmp", emptyDir: {} });
    expect(c.volumeMounts).toContainEqual({ name: "tmp", mountPath: "/tmp" });
    expect(c.startupProbe?.httpGet).toEqual({ path: "/healthz", port: "health" });
    expect(c.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "health" });
    expect(c.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "health" });
    expect(c.resources.requests).toBeDefined();
    expect(c.resources.limits?.memory).toBeDefined();
    expect(c.env).toContainEqual({
      name: "NODE_OPTIONS",
      value: "--max-old-space-size=384 --max-semi-space-size=16",
    });
    expect(
      gatewayContainerOf(await render([...GW, "--set", "gateway.nodeOptions="])).env?.some(
        (e) => e.name === "NODE_OPTIONS",
      ),
    ).toBe(false);
    // Drains: the Service drops the pod before SIGTERM closes the listener.
    expect(c.lifecycle).toEqual({ preStop: { sleep: { seconds: 5 } } });
    expect(pod.terminationGracePeriodSeconds).toBe(60);
    expect(pod.serviceAccountName).toBe(GATEWAY);
    expect(pod.serviceAccountName).not.toBe(deploymentOf(docs).template.spec.serviceAccountName);
    expect(pod.automountServiceAccountToken).toBe(true);
  });

  it("serves the API over HTTPS from a TLS Secret when asked", async () => {
    const plain = await render(GW);
    expect(gatewayContainerOf(plain).args.some((a) => a.startsWith("--tls-cert-dir"))).toBe(false);
    expect(gatewayDeploymentOf(plain).template.spec.volumes.map((v) => v.name)).toEqual(["tmp"]);
    for (const [extra, secret] of [
      [[], `${GATEWAY}-tls`],
      [["--set", "gateway.tls.certSecretName=my-gateway-cert"], "my-gateway-cert"],
    ] as const) {
      const docs = await render([...GW, "--set", "gateway.tls.enabled=true", ...extra]);
      const c = gatewayContainerOf(docs);
      expect(c.args).toContain("--tls-cert-dir=/tmp/connector-gateway/serving-certs");
      expect(c.volumeMounts).toContainEqual({
        name: "tls",
        mountPath: "/tmp/connector-gateway/serving-certs",
        readOnly: true,
      });
      expect(gatewayDeploymentOf(docs).template.spec.volumes).toContainEqual({
        name: "tls",
        secret: { secretName: secret, defaultMode: 0o440 },
      });
      expect((named(docs, "Service", GATEWAY).spec as { ports: unknown[] }).ports).toEqual([
        { name: "https", port: 8090, targetPort: "api", protocol: "TCP", appProtocol: "https" },
      ]);
    }
  });

  it("puts the API and /metrics behind Services of their own, and a ServiceMonitor on /metrics when asked", async () => {
    const docs = await render([...GW, "--set", "gateway.service.port=80"]);
    const pods = gatewayDeploymentOf(docs).template.metadata.labels;
    const api = named(docs, "Service", GATEWAY).spec as {
      selector: Record<string, string>;
      ports: unknown[];
    };
    expect(api.ports).toEqual([
      { name: "http", port: 80, targetPort: "api", protocol: "TCP", appProtocol: "http" },
    ]);
    const metrics = named(docs, "Service", `${GATEWAY}-metrics`).spec as {
      selector: Record<string, string>;
      ports: unknown[];
    };
    expect(metrics.ports).toEqual([{ name: "metrics", port: 8082, targetPort: "metrics", protocol: "TCP" }]);
    for (const s of [api, metrics]) {
      expect(pods).toMatchObject(s.selector);
      expect(deploymentOf(docs).template.metadata.labels).not.toMatchObject(s.selector);
    }
    // The controller's metrics Service does not select the gateway's pods.
    const controllerMetrics = named(docs, "Service", `${RELEASE}-metrics`).spec as {
      selector: Record<string, string>;
    };
    expect(pods).not.toMatchObject(controllerMetrics.selector);

    expect(byKind(docs, "ServiceMonitor")).toEqual([]);
    const monitored = await render([...GW, "--set", "metrics.serviceMonitor.enabled=true"]);
    const sm = named(monitored, "ServiceMonitor", GATEWAY).spec as {
      selector: { matchLabels: Record<string, string> };
      endpoints: Array<Record<string, unknown>>;
    };
    expect(sm.endpoints).toEqual([expect.objectContaining({ port: "metrics", path: "/metrics" })]);
    expect(named(monitored, "Service", `${GATEWAY}-metrics`).metadata.labels).toMatchObject(
      sm.selector.matchLabels,
    );
    expect(named(monitored, "Service", `${RELEASE}-metrics`).metadata.labels).not.toMatchObject(
      sm.selector.matchLabels,
    );
    // And the controller's ServiceMonitor does not pick up the gateway's Service.
    const controllerSm = named(monitored, "ServiceMonitor", RELEASE).spec as {
      selector: { matchLabels: Record<string, string> };
    };
    expect(named(monitored, "Service", `${GATEWAY}-metrics`).metadata.labels).not.toMatchObject(
      controllerSm.selector.matchLabels,
    );
  });

  it("grants its own ServiceAccount exactly the gateway section of rbac-expectations.yaml", async () => {
    const docs = await render(GW);
    const clusterRole = named(docs, "ClusterRole", GATEWAY) as unknown as { rules: PolicyRule[] };
    const role = named(docs, "Role", GATEWAY) as unknown as {
      metadata: { namespace: string };
      rules: PolicyRule[];
    };
    expect(role.metadata.namespace).toBe(NS);
    expect(grants(clusterRole.rules)).toEqual(expectedGrants(EXPECTATIONS.gateway.clusterRole));
    expect(grants(role.rules)).toEqual(expectedGrants(EXPECTATIONS.gateway.role));
    const all = [...grants(clusterRole.rules), ...grants(role.rules)];
    for (const r of [...clusterRole.rules, ...role.rules]) {
      expect(r.verbs).not.toContain("*");
      expect(r.resources).not.toContain("*");
      expect(r.apiGroups).not.toContain("*");
    }
    // It reads our kinds from caches and writes none of them; no get, no Events, no Lease.
    expect(all.filter((g) => g.startsWith("cynodeai.io|") && !/\|(list|watch)$/.test(g))).toEqual([]);
    expect(all.filter((g) => /\|(update|patch|delete|deletecollection)$/.test(g))).toEqual([]);
    expect(all.filter((g) => /^(core\|events|coordination)/.test(g))).toEqual([]);
    // Secrets: only its two HMAC keys, by name, and only in the release namespace.
    expect(grants(clusterRole.rules).some((g) => g.startsWith("core|secrets|"))).toBe(false);
    expect(grants(role.rules).filter((g) => g.startsWith("core|secrets|") && g.endsWith("|get"))).toEqual([
      `core|secrets|${FINGERPRINT_SECRET}|get`,
      `core|secrets|${APPROVAL_SECRET}|get`,
    ]);
    // Bound to the gateway's ServiceAccount alone; the controller's bindings do not name it.
    for (const b of [named(docs, "ClusterRoleBinding", GATEWAY), named(docs, "RoleBinding", GATEWAY)]) {
      expect(b.subjects).toEqual([{ kind: "ServiceAccount", name: GATEWAY, namespace: NS }]);
      expect((b as { roleRef?: { name: string } }).roleRef?.name).toBe(GATEWAY);
    }
    for (const b of [named(docs, "ClusterRoleBinding", RELEASE), named(docs, "RoleBinding", RELEASE)])
      expect(b.subjects).toEqual([{ kind: "ServiceAccount", name: SA, namespace: NS }]);
    // Turned off, none of it.
    const noRbac = await render([
      ...GW,
      "--set",
      "gateway.rbac.create=false",
      "--set",
      "gateway.serviceAccount.create=false",
      "--set",
      "gateway.serviceAccount.name=gw",
    ]);
    expect(gatewayObjects(noRbac).filter((o) => /^(Cluster)?Role|ServiceAccount/.test(o))).toEqual([]);
    expect(gatewayDeploymentOf(noRbac).template.spec.serviceAccountName).toBe("gw");
  });

  describe("NetworkPolicy", () => {
    interface Rule {
      ports?: Array<{ port: string | number; protocol: string }>;
      from?: unknown[];
      to?: unknown[];
    }
    const policyOf = (docs: K8sObject[]) =>
      named(docs, "NetworkPolicy", GATEWAY) as K8sObject & {
        spec: {
          podSelector: { matchLabels: Record<string, string> };
          policyTypes: string[];
          ingress: Rule[];
          egress?: Rule[];
        };
      };

    it("admits callers to the API, scrapers to /metrics and the kubelet to the probes: nothing else", async () => {
      const docs = await render(GW);
      const np = policyOf(docs);
      // It selects exactly the gateway's pods (and the controller's policy does not).
      const pods = gatewayDeploymentOf(docs).template.metadata.labels;
      expect(pods).toMatchObject(np.spec.podSelector.matchLabels);
      expect(deploymentOf(docs).template.metadata.labels).not.toMatchObject(np.spec.podSelector.matchLabels);
      const controllerPolicy = named(docs, "NetworkPolicy", RELEASE).spec as {
        podSelector: { matchLabels: Record<string, string> };
      };
      expect(pods).not.toMatchObject(controllerPolicy.podSelector.matchLabels);
      expect(np.spec.ingress).toEqual([
        { ports: [{ port: "api", protocol: "TCP" }] },
        { ports: [{ port: "metrics", protocol: "TCP" }] },
        { ports: [{ port: "health", protocol: "TCP" }] },
      ]);
      const ports = new Set(gatewayContainerOf(docs).ports.map((p) => p.name));
      for (const r of np.spec.ingress) for (const p of r.ports ?? []) expect(ports).toContain(p.port);

      const monitoring = {
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } },
      };
      const agents = { namespaceSelector: { matchLabels: { "cynodeai.io/agents": "true" } } };
      // The callers it admits; scrapers default to the controller's networkPolicy.metricsFrom.
      const limited = policyOf(
        await render([
          ...GW,
          "--set-json",
          `gateway.networkPolicy.apiFrom=${JSON.stringify([agents])}`,
          "--set-json",
          `networkPolicy.metricsFrom=${JSON.stringify([monitoring])}`,
        ]),
      );
      expect(limited.spec.ingress[0]!.from).toEqual([agents]);
      expect(limited.spec.ingress[1]!.from).toEqual([monitoring]);
      expect(limited.spec.ingress[2]!.from).toBeUndefined();
      const own = policyOf(
        await render([...GW, "--set-json", `gateway.networkPolicy.metricsFrom=${JSON.stringify([agents])}`]),
      );
      expect(own.spec.ingress[1]!.from).toEqual([agents]);
      const off = await render([...GW, "--set", "gateway.networkPolicy.enabled=false"]);
      expect(byKind(off, "NetworkPolicy").map((p) => p.metadata.name)).toEqual([RELEASE]);
    });

    it("limits egress by default to DNS, the API server, the database, Vault, the catalog's addresses and extra", async () => {
      // The default: egress limited (the controller's stays open unless asked).
      const defaults = policyOf(await render(GW));
      expect(defaults.spec.policyTypes).toEqual(["Ingress", "Egress"]);
      expect(defaults.spec.egress).toEqual([
        {
          to: [{ namespaceSelector: {}, podSelector: { matchLabels: { "k8s-app": "kube-dns" } } }],
          ports: [
            { port: 53, protocol: "UDP" },
            { port: 53, protocol: "TCP" },
          ],
        },
        {
          ports: [
            { port: 443, protocol: "TCP" },
            { port: 6443, protocol: "TCP" },
          ],
        },
        { ports: [{ port: 5432, protocol: "TCP" }] },
        { ports: [{ port: 8200, protocol: "TCP" }] },
      ]);
      // Host names of the real catalog are listed for the operator to translate into extra.
      expect(defaults.metadata.annotations?.["cynodeai.io/egress-hosts"]).toContain("imap.gmail.com");

      // A copy of the chart whose catalog declares IP addresses, as a type may.
      const chartCopy = path.join(helmHome, "chart-with-ip-type-gateway");
      fs.cpSync(CHART, chartCopy, { recursive: true });
      fs.writeFileSync(
        path.join(chartCopy, "files/catalog/types/zz-ip.yaml"),
        [
          "apiVersion: cynodeai.io/v1alpha1",
          "kind: ConnectorType",
          "metadata: { name: zz-ip }",
          "spec:",
          "  displayName: IP",
          "  dataClassification: internal",
          "  approvalPolicy: auto",
          "  versions:",
          "    - version: 1",
          "      schemaVersion: 1.0.0",
          "      lifecycle: approved",
          "      configSchema: { type: object }",
          "      operations: []",
          "      healthProbe: { kind: none }",
          "      egressAllowlist: [198.51.100.9, 127.0.0.1, localhost, api.example.net]",
          "",
        ].join("\n"),
      );
      const provider = {
        to: [{ ipBlock: { cidr: "192.0.2.0/24" } }],
        ports: [{ port: 993, protocol: "TCP" }],
      };
      const shared = { to: [{ ipBlock: { cidr: "203.0.113.0/24" } }] };
      const res = await helm([
        "template",
        RELEASE,
        chartCopy,
        "-n",
        NS,
        ...GW,
        "--set",
        "networkPolicy.egress.apiServer.cidrs={10.96.0.1/32}",
        "--set-json",
        'networkPolicy.egress.database.to=[{"ipBlock":{"cidr":"10.20.0.0/16"}}]',
        "--set-json",
        'networkPolicy.egress.vault.to=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"vault"}}}]',
        "--set-json",
        `networkPolicy.egress.extra=${JSON.stringify([shared])}`,
        "--set-json",
        `gateway.networkPolicy.egress.extra=${JSON.stringify([provider])}`,
      ]);
      expect(res.code, res.stderr).toBe(0);
      const docs = (loadAll(res.stdout) as Array<K8sObject | null>).filter((d): d is K8sObject => d !== null);
      const np = policyOf(docs);
      expect(np.spec.egress).toEqual([
        defaults.spec.egress![0],
        {
          to: [{ ipBlock: { cidr: "10.96.0.1/32" } }],
          ports: [
            { port: 443, protocol: "TCP" },
            { port: 6443, protocol: "TCP" },
          ],
        },
        { to: [{ ipBlock: { cidr: "10.20.0.0/16" } }], ports: [{ port: 5432, protocol: "TCP" }] },
        {
          to: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "vault" } } }],
          ports: [{ port: 8200, protocol: "TCP" }],
        },
        // The IP literals become ipBlocks (loopback needs none); host names cannot, and are listed.
        { to: [{ ipBlock: { cidr: "198.51.100.9/32" } }] },
        shared,
        provider,
      ]);
      expect(np.metadata.annotations?.["cynodeai.io/egress-hosts"]).toContain("api.example.net");
      expect(np.metadata.annotations?.["cynodeai.io/egress-hosts"]).not.toContain("localhost");
      // The controller's own policy is unchanged by the gateway's extra rules.
      const controller = named(docs, "NetworkPolicy", RELEASE).spec as { policyTypes: string[] };
      expect(controller.policyTypes).toEqual(["Ingress"]);
      // Egress left open only when asked.
      const open = policyOf(await render([...GW, "--set", "gateway.networkPolicy.egress.enabled=false"]));
      expect(open.spec.policyTypes).toEqual(["Ingress"]);
      expect(open.spec.egress).toBeUndefined();
      // And the API server accepts it as a NetworkPolicy.
      const { namespace: _ns, ...meta } = np.metadata;
      await kubectlOk(
        ["apply", "--dry-run=server", "-n", "default", "-f", "-"],
        JSON.stringify({ ...np, metadata: meta }),
      );
    });
  });
});

describe("on the test control plane", () => {
  let manifests: string;

  beforeAll(async () => {
    // PodSecurity "restricted" on the release namespace: violations show as warnings.
    await kubectlOk(["create", "namespace", NS]);
    await kubectlOk([
      "label",
      "namespace",
      NS,
      "pod-security.kubernetes.io/enforce=restricted",
      "pod-security.kubernetes.io/warn=restricted",
    ]);
    await kubectlOk(["create", "namespace", TENANT_NS]);
    // The production-like release, the gateway on.
    manifests = await renderText([...PROD, "--set", `webhook.caBundle=${caBundle}`, ...GW], true);
  });

  it("accepts the rendered manifests (server-side dry run, CRDs first) without PodSecurity warnings", async () => {
    const r = await kubectlOk(
      ["apply", "--server-side", "--dry-run=server", "-f", "-", "-o", "name"],
      manifests,
    );
    expect(r.stderr).not.toMatch(/would violate PodSecurity|Warning/i);
    const applied = r.stdout.trim().split("\n");
    expect(applied).toEqual(
      expect.arrayContaining([
        `deployment.apps/${RELEASE}`,
        `serviceaccount/${SA}`,
        `clusterrole.rbac.authorization.k8s.io/${RELEASE}`,
        `role.rbac.authorization.k8s.io/${RELEASE}`,
        `validatingwebhookconfiguration.admissionregistration.k8s.io/${RELEASE}`,
        "connectortype.cynodeai.io/imap",
        "customresourcedefinition.apiextensions.k8s.io/connectors.cynodeai.io",
        `deployment.apps/${GATEWAY}`,
        `serviceaccount/${GATEWAY}`,
        `clusterrole.rbac.authorization.k8s.io/${GATEWAY}`,
        `clusterrolebinding.rbac.authorization.k8s.io/${GATEWAY}`,
        `role.rbac.authorization.k8s.io/${GATEWAY}`,
        `rolebinding.rbac.authorization.k8s.io/${GATEWAY}`,
        `service/${GATEWAY}`,
        `service/${GATEWAY}-metrics`,
        `poddisruptionbudget.policy/${GATEWAY}`,
        `networkpolicy.networking.k8s.io/${GATEWAY}`,
      ]),
    );
    // The gateway's variants too: HTTPS from a Secret, one replica, its egress left open.
    for (const variant of [
      ["--set", "gateway.tls.enabled=true", "--set", "gateway.preStopSleepSeconds=0"],
      ["--set", "gateway.replicaCount=1", "--set", "gateway.networkPolicy.egress.enabled=false"],
    ]) {
      const text = await renderText([...GW, ...variant]);
      const v = await kubectlOk(
        ["apply", "--server-side", "--dry-run=server", "-f", "-", "-o", "name"],
        text,
      );
      expect(v.stderr, variant.join(" ")).not.toMatch(/would violate PodSecurity|Warning/i);
      expect(v.stdout).toContain(`deployment.apps/${GATEWAY}`);
    }
  });

  it("installs with helm itself (--dry-run=server) and explains itself in NOTES", async () => {
    const prod = await helm([
      "install",
      RELEASE,
      CHART,
      "--namespace",
      NS,
      "--kubeconfig",
      cp.kubeconfigPath,
      "--dry-run=server",
      ...PROD,
      "--set",
      `webhook.caBundle=${caBundle}`,
    ]);
    expect(prod.code, prod.stderr).toBe(0);
    const notes = prod.stdout.slice(prod.stdout.indexOf("NOTES:"));
    expect(notes).toContain("Replicas: 2 (leader election on");
    expect(notes).toContain("PostgreSQL, URL from Secret connector-db");
    expect(notes).toContain(`${RELEASE}-webhook.${NS}.svc/validate-connector (failurePolicy Fail)`);
    expect(notes).toContain("Gateway: not installed (gateway.enabled=false)");
    const gateway = await helm([
      "install",
      RELEASE,
      CHART,
      "-n",
      NS,
      "--kubeconfig",
      cp.kubeconfigPath,
      "--dry-run=server",
      ...GW,
    ]);
    expect(gateway.code, gateway.stderr).toBe(0);
    const gwNotes = gateway.stdout.slice(gateway.stdout.indexOf("NOTES:"));
    expect(gwNotes).toContain(
      `Gateway: 2 replicas of deployment/${GATEWAY}, the API at http://${GATEWAY}.${NS}.svc:8090`,
    );
    expect(gwNotes).toContain(`kubectl -n ${NS} port-forward svc/${GATEWAY} 8090`);
    expect(gwNotes).toContain(
      "-X POST http://localhost:8090/v1/namespaces/team-a/connectors/<name>/operations/<operation>",
    );
    expect(gwNotes).toContain("gateway.networkPolicy.egress.extra");
    const tls = await helm([
      "install",
      RELEASE,
      CHART,
      "-n",
      NS,
      "--kubeconfig",
      cp.kubeconfigPath,
      "--dry-run=server",
      ...GW,
      "--set",
      "gateway.tls.enabled=true",
    ]);
    expect(tls.code, tls.stderr).toBe(0);
    expect(tls.stdout).toContain(`HTTPS with the certificate of Secret ${GATEWAY}-tls`);
    expect(tls.stdout).toContain("https://localhost:8090/v1/catalog");
    const dryRun = (extra: string[] = []) =>
      helm([
        "install",
        RELEASE,
        CHART,
        "-n",
        NS,
        "--kubeconfig",
        cp.kubeconfigPath,
        "--dry-run=server",
        ...extra,
      ]);
    const embedded = await dryRun();
    expect(embedded.code, embedded.stderr).toBe(0);
    expect(embedded.stdout).toMatch(/Replicas: 1\b/);
    expect(embedded.stdout).toContain("a PersistentVolumeClaim, kept on uninstall");
    const throwaway = await dryRun(["--set", "database.embedded.persistence.enabled=false"]);
    expect(throwaway.code, throwaway.stderr).toBe(0);
    expect(throwaway.stdout).toMatch(/Replicas: 1\b/);
    expect(throwaway.stdout).toContain("it is LOST when the pod goes");
  });

  it("accepts the embedded-database variant with a PVC, and the Vault SecretProvider when its CRD is installed", async () => {
    const embedded = await renderText(["--set", "database.embedded.persistence.enabled=true"]);
    const r = await kubectlOk(
      ["apply", "--server-side", "--dry-run=server", "-f", "-", "-o", "name"],
      embedded,
    );
    expect(r.stderr).not.toMatch(/would violate PodSecurity/);
    expect(r.stdout).toContain(`persistentvolumeclaim/${RELEASE}-data`);

    const hasProviderCrd = fs.existsSync(path.join(CHART, "crds", "secretproviders.cynodeai.io.yaml"));
    if (hasProviderCrd) {
      const provider = await renderText([
        "--set",
        "vault.secretProvider.create=true",
        "--set",
        "vault.address=https://vault.vault.svc:8200",
        "--show-only",
        "templates/secretprovider.yaml",
      ]);
      await kubectlOk(["apply", "--server-side", "--dry-run=server", "-f", "-"], provider);
      const others = await renderText([
        "--set",
        "vault.secretProvider.create=true",
        "--set",
        "vault.address=https://vault.vault.svc:8200",
        "--set",
        "vault.caBundleRef.name=vault-ca",
        "--set",
        "kubernetesSecrets.secretProvider.create=true",
        "--show-only",
        "templates/secretprovider.yaml",
      ]);
      await kubectlOk(["apply", "--server-side", "--dry-run=server", "-f", "-"], others);
    }
  });

  it("installs for real: the catalog is served and the ServiceAccount exists", async () => {
    await kubectlOk(["apply", "--server-side", "-f", "-"], manifests);
    const types = (await kubectlOk(["get", "connectortypes", "-o", "name"])).stdout.trim().split("\n").sort();
    expect(types).toEqual(
      fs
        .readdirSync(path.join(REPO_ROOT, "examples/types"))
        .filter((f) => f.endsWith(".yaml"))
        .map((f) => `connectortype.cynodeai.io/${f.replace(/\.yaml$/, "")}`)
        .sort(),
    );
    await kubectlOk(["get", "serviceaccount", SA, "-n", NS]);
    // The API server stored exactly the rules that were rendered.
    const live = JSON.parse((await kubectlOk(["get", "clusterrole", RELEASE, "-o", "json"])).stdout) as {
      rules: PolicyRule[];
    };
    expect(grants(live.rules)).toEqual(expectedGrants(EXPECTATIONS.clusterRole));
    await kubectlOk(["get", "serviceaccount", GATEWAY, "-n", NS]);
    const liveGateway = JSON.parse(
      (await kubectlOk(["get", "clusterrole", GATEWAY, "-o", "json"])).stdout,
    ) as {
      rules: PolicyRule[];
    };
    expect(grants(liveGateway.rules)).toEqual(expectedGrants(EXPECTATIONS.gateway.clusterRole));
  });

  it("lists all four kinds under the cynodeai category and explains every Connector field", async () => {
    // The installed catalog is in the category.
    const r = await kubectlOk(["get", "cynodeai", "-A", "-o", "name"]);
    expect(
      new Set(
        r.stdout
          .trim()
          .split("\n")
          .map((l) => l.split("/")[0]),
      ),
    ).toEqual(new Set(["connectortype.cynodeai.io", "connectorpolicytemplate.cynodeai.io"]));
    // With one of each kind present, the category shows them all. (No controller serves the
    // webhook installed above: it goes first, or it would refuse every Connector.)
    await kubectlOk(["delete", "validatingwebhookconfiguration", RELEASE]);
    await kubectlOk(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          {
            apiVersion: "cynodeai.io/v1alpha1",
            kind: "Connector",
            metadata: { name: "category-probe", namespace: TENANT_NS },
            spec: { type: "http", typeVersion: 2, owner: { type: "group", id: "ops" }, policyTemplate: "x" },
          },
          {
            apiVersion: "cynodeai.io/v1alpha1",
            kind: "SecretProvider",
            metadata: { name: "category-probe" },
            spec: { file: { directory: "/nonexistent" } },
          },
        ],
      }),
    );
    const all = await kubectlOk(["get", "cynodeai", "-A", "-o", "name"]);
    expect(
      new Set(
        all.stdout
          .trim()
          .split("\n")
          .map((l) => l.split("/")[0]),
      ),
    ).toEqual(
      new Set([
        "connector.cynodeai.io",
        "connectortype.cynodeai.io",
        "connectorpolicytemplate.cynodeai.io",
        "secretprovider.cynodeai.io",
      ]),
    );
    // The API server stored the new fields' defaults.
    const stored = JSON.parse(
      (await kubectlOk(["get", "connector", "category-probe", "-n", TENANT_NS, "-o", "json"])).stdout,
    ) as { spec: Record<string, unknown> };
    expect(stored.spec).toMatchObject({ deletionPolicy: "Delete", managementPolicy: "Full", enabled: true });
    // A lower-case policy is refused by the API server itself, naming the allowed values.
    const bad = await cp.kubectl([
      "patch",
      "connector",
      "category-probe",
      "-n",
      TENANT_NS,
      "--type=merge",
      "-p",
      '{"spec":{"deletionPolicy":"orphan"}}',
    ]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/deletionPolicy.*Unsupported value: "orphan".*"Delete", "Orphan"/s);
    await kubectlOk(["delete", "connector", "category-probe", "-n", TENANT_NS, "--wait=false"]);
    await kubectlOk(["delete", "secretprovider", "category-probe", "--wait=false"]);

    // kubectl explain has something to say about every field, recursively.
    const explained = await kubectlOk([
      "explain",
      "connector.spec",
      "--recursive",
      "--output=plaintext-openapiv2",
    ]);
    expect(explained.stdout).toContain("deletionPolicy");
    const field = await kubectlOk(["explain", "connector.spec.deletionPolicy"]);
    expect(field.stdout).toMatch(/Orphan:\s+the row is left as it is/);
    const cpt = await kubectlOk(["explain", "connectorpolicytemplate.spec.allowOperations"]);
    expect(cpt.stdout).toMatch(/Names\s+of\s+the\s+operations\s+that\s+may\s+be\s+called/);
  });

  it("upgrades the CRDs with the server-side apply step docs/upgrading.md gives", async () => {
    // The previous release's Connector CRD: the live one without the two policy fields.
    type Crd = {
      spec: {
        versions: Array<{
          schema: { openAPIV3Schema: { properties: { spec: { properties: Record<string, unknown> } } } };
        }>;
      };
    };
    const current = load(
      fs.readFileSync(path.join(CHART, "crds", "connectors.cynodeai.io.yaml"), "utf8"),
    ) as Crd;
    const old = JSON.parse(
      (await kubectlOk(["get", "crd", "connectors.cynodeai.io", "-o", "json"])).stdout,
    ) as Crd;
    const props = old.spec.versions[0]!.schema.openAPIV3Schema.properties.spec.properties;
    delete props.deletionPolicy;
    delete props.managementPolicy;
    await kubectlOk(["replace", "-f", "-"], JSON.stringify(old));
    // The API server republishes a CRD's OpenAPI a moment after it changes.
    const explains = async (want: boolean) => {
      for (let i = 0; i < 60; i++) {
        const r = await cp.kubectl(["explain", "connector.spec.deletionPolicy"]);
        if ((r.code === 0) === want) return r;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      throw new Error(`kubectl explain connector.spec.deletionPolicy never ${want ? "succeeded" : "failed"}`);
    };
    await explains(false);

    const doc = fs.readFileSync(path.join(REPO_ROOT, "docs", "upgrading.md"), "utf8");
    const step = doc.split("\n").find((l) => l.startsWith("helm show crds "));
    expect(step, "docs/upgrading.md gives the CRD step as a line of its own").toBeDefined();
    expect(step).toMatch(/kubectl apply --server-side --force-conflicts/);
    const r = await runCommand("bash", ["-euo", "pipefail", "-c", step!], {
      timeoutMs: 120_000,
      env: {
        ...process.env,
        PATH: `${path.dirname(helmBin)}:${cp.binDir}:${process.env.PATH ?? ""}`,
        KUBECONFIG: cp.kubeconfigPath,
        HELM_CACHE_HOME: path.join(helmHome, "cache"),
        HELM_CONFIG_HOME: path.join(helmHome, "config"),
        HELM_DATA_HOME: path.join(helmHome, "data"),
      },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      "customresourcedefinition.apiextensions.k8s.io/connectors.cynodeai.io serverside-applied",
    );
    await kubectlOk(["wait", "--for=condition=Established", "crd/connectors.cynodeai.io", "--timeout=60s"]);
    expect((await explains(true)).stdout).toContain("Orphan");
    // The stored CRD is the chart's again, field for field.
    const live = JSON.parse(
      (await kubectlOk(["get", "crd", "connectors.cynodeai.io", "-o", "json"])).stdout,
    ) as {
      spec: { versions: Array<{ schema: unknown }> };
    };
    expect(live.spec.versions[0]!.schema).toEqual(current.spec.versions[0]!.schema);
  });

  it("serves secure metrics to a scraper bound to metrics-reader only, with the chart's review grants", async () => {
    const rbac = await renderText([
      "--set",
      "metrics.secure.enabled=true",
      "--show-only",
      "templates/rbac.yaml",
      "--show-only",
      "templates/serviceaccount.yaml",
    ]);
    await kubectlOk(["apply", "--server-side", "-f", "-"], rbac);
    await kubectlOk(["create", "namespace", "monitoring"]);
    await kubectlOk(["create", "serviceaccount", "prometheus", "-n", "monitoring"]);
    await kubectlOk(["create", "serviceaccount", "intruder", "-n", "monitoring"]);
    await kubectlOk([
      "create",
      "clusterrolebinding",
      "prometheus-metrics-reader",
      `--clusterrole=${RELEASE}-metrics-reader`,
      "--serviceaccount=monitoring:prometheus",
    ]);
    const token = async (ns: string, sa: string) =>
      (await kubectlOk(["create", "token", sa, "-n", ns, "--duration=1h"])).stdout.trim();
    // The controller's reviews run as the chart's ServiceAccount, with the chart's grants alone.
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "test", server: cp.server, caData: Buffer.from(cp.caPem).toString("base64") }],
      users: [{ name: SA, token: await token(NS, SA) }],
      contexts: [{ name: "sa", cluster: "test", user: SA }],
      currentContext: "sa",
    });
    const registry = new Registry();
    new Counter({ name: "chart_secure_metrics_total", help: "test", registers: [registry] }).inc();
    // The default install grants no reviews: what this test added goes again afterwards
    // (the can-i matrix below checks the default grants).
    const cleanup = async () => {
      await kubectlOk([
        "delete",
        "clusterrolebinding",
        `${RELEASE}-metrics-auth`,
        "prometheus-metrics-reader",
      ]);
      await kubectlOk(["delete", "clusterrole", `${RELEASE}-metrics-auth`, `${RELEASE}-metrics-reader`]);
    };
    const server = await startSecureMetricsServer({
      host: "127.0.0.1",
      port: 0,
      registry,
      reviewer: kubeAccessReviews(kc),
    });
    try {
      const port = (server.address() as AddressInfo).port;
      const get = (bearer?: string) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = httpsRequest(
            {
              host: "127.0.0.1",
              port,
              path: "/metrics",
              rejectUnauthorized: false,
              headers: bearer ? { authorization: `Bearer ${bearer}` } : {},
            },
            (res) => {
              let body = "";
              res.on("data", (d: Buffer) => (body += d.toString()));
              res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
            },
          );
          req.on("error", reject);
          req.end();
        });
      const prom = await get(await token("monitoring", "prometheus"));
      expect(prom.status, prom.body).toBe(200);
      expect(prom.body).toContain("chart_secure_metrics_total 1");
      const intruder = await get(await token("monitoring", "intruder"));
      expect(intruder.status).toBe(403);
      expect(intruder.body).toContain("system:serviceaccount:monitoring:intruder");
      expect((await get("not-a-token")).status).toBe(401);
      expect((await get()).status).toBe(401);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await cleanup();
    }
  });

  // Our resources whose CRD the chart does not ship yet (kubectl cannot resolve them, so
  // they are asked about with a SubjectAccessReview, which RBAC answers the same way).
  const unserved = new Set(
    ["secretproviders"].filter((p) => !fs.existsSync(path.join(CHART, "crds", `${p}.cynodeai.io.yaml`))),
  );

  /** The same question as `kubectl auth can-i <args> --as=<as>`, as a SubjectAccessReview. */
  const review = async (as: string, args: string[]): Promise<string> => {
    const [verb, what] = args as [string, string];
    const [typed, name] = what.split("/") as [string, string | undefined];
    const dot = typed.indexOf(".");
    const ns = args.includes("-A") ? "" : (args[args.indexOf("-n") + 1] ?? "");
    const sub = args.find((a) => a.startsWith("--subresource="))?.slice("--subresource=".length);
    const sar = {
      apiVersion: "authorization.k8s.io/v1",
      kind: "SubjectAccessReview",
      spec: {
        user: as,
        groups: ["system:serviceaccounts", `system:serviceaccounts:${NS}`, "system:authenticated"],
        resourceAttributes: {
          verb,
          group: dot < 0 ? "" : typed.slice(dot + 1),
          resource: dot < 0 ? typed : typed.slice(0, dot),
          ...(sub ? { subresource: sub } : {}),
          ...(name ? { name } : {}),
          namespace: ns,
        },
      },
    };
    const r = await kubectlOk(["create", "-f", "-", "-o", "json"], JSON.stringify(sar));
    return (JSON.parse(r.stdout) as { status: { allowed: boolean } }).status.allowed ? "yes" : "no";
  };

  /** `kubectl auth can-i <args> --as=<as>`: "yes" or "no". */
  const canIAs = async (as: string, args: string[]): Promise<string> => {
    const resource = args[1]!.split(/[./]/)[0]!;
    if (unserved.has(resource)) return review(as, args);
    const r = await cp.kubectl(["auth", "can-i", ...args, `--as=${as}`]);
    // exit 0 = yes, 1 = no; anything else (or other output) is an error of the check itself.
    const answer = r.stdout.trim();
    expect(["yes", "no"], `can-i ${args.join(" ")}: ${r.stderr}`).toContain(answer);
    // A "no" about a resource the server does not serve would prove nothing (users, for
    // impersonation, and groups are the virtual resources asked about).
    if (resource !== "users" && resource !== "groups")
      expect(r.stderr, `can-i ${args.join(" ")}`).not.toMatch(/doesn't have a resource type/);
    return answer;
  };

  /** can-i arguments for one expectation's verb, in a namespace or cluster-wide. */
  const target = (e: Expectation, verb: string, where: string[]): string[][] => {
    const [resource, sub] = e.resource.split("/") as [string, string | undefined];
    const qualified = e.apiGroup ? `${resource}.${e.apiGroup}` : resource;
    const names = e.resourceNames ?? [undefined];
    return names.map((n) => [
      verb,
      n ? `${qualified}/${n}` : qualified,
      ...(sub ? [`--subresource=${sub}`] : []),
      ...where,
    ]);
  };

  describe("kubectl auth can-i as the controller's ServiceAccount", () => {
    const canI = (args: string[]) => canIAs(AS, args);

    it("can do everything the controller needs, everywhere (ClusterRole)", async () => {
      const checks = EXPECTATIONS.clusterRole.flatMap((e) =>
        e.verbs.flatMap((v) => [...target(e, v, ["-A"]), ...target(e, v, ["-n", TENANT_NS])]),
      );
      expect(checks.length).toBeGreaterThan(15);
      const answers = await Promise.all(checks.map(async (c) => [c.join(" "), await canI(c)]));
      expect(answers.filter(([, a]) => a !== "yes")).toEqual([]);
    });

    it("can do what the Role grants in the release namespace only", async () => {
      const checks = EXPECTATIONS.role.flatMap((e) => e.verbs.flatMap((v) => target(e, v, ["-n", NS])));
      const elsewhere = EXPECTATIONS.role.flatMap((e) =>
        e.verbs.flatMap((v) => [...target(e, v, ["-n", TENANT_NS]), ...target(e, v, ["-A"])]),
      );
      const yes = await Promise.all(checks.map(async (c) => [c.join(" "), await canI(c)]));
      expect(yes.filter(([, a]) => a !== "yes")).toEqual([]);
      const no = await Promise.all(elsewhere.map(async (c) => [c.join(" "), await canI(c)]));
      expect(no.filter(([, a]) => a !== "no")).toEqual([]);
    });

    it("cannot read Secrets cluster-wide, in other namespaces, or other Secrets of its own namespace", async () => {
      const checks = [
        ["get", "secrets", "-A"],
        ["list", "secrets", "-A"],
        ["watch", "secrets", "-A"],
        ["get", "secrets", "-n", TENANT_NS],
        ["list", "secrets", "-n", TENANT_NS],
        ["get", `secrets/${FINGERPRINT_SECRET}`, "-n", TENANT_NS],
        ["list", "secrets", "-n", NS],
        ["watch", "secrets", "-n", NS],
        ["get", "secrets/connector-db", "-n", NS],
        ["update", `secrets/${FINGERPRINT_SECRET}`, "-n", NS],
        ["patch", `secrets/${FINGERPRINT_SECRET}`, "-n", NS],
        ["delete", `secrets/${FINGERPRINT_SECRET}`, "-n", NS],
        ["create", "secrets", "-n", TENANT_NS],
      ];
      const answers = await Promise.all(checks.map(async (c) => [c.join(" "), await canI(c)]));
      expect(answers.filter(([, a]) => a !== "no")).toEqual([]);
    });

    it("cannot touch anything else", async () => {
      const checks = [
        ["delete", "connectors.cynodeai.io", "-n", TENANT_NS],
        ["deletecollection", "connectors.cynodeai.io", "-n", TENANT_NS],
        ["create", "connectors.cynodeai.io", "-n", TENANT_NS],
        ["update", "connectors.cynodeai.io", "-n", TENANT_NS],
        ["get", "connectors.cynodeai.io", "-n", TENANT_NS],
        ["update", "connectors.cynodeai.io", "--subresource=status", "-n", TENANT_NS],
        ["update", "connectortypes.cynodeai.io", "-A"],
        ["patch", "connectortypes.cynodeai.io", "-A"],
        ["create", "connectortypes.cynodeai.io", "-A"],
        ["delete", "connectortypes.cynodeai.io", "-A"],
        ["patch", "connectorpolicytemplates.cynodeai.io", "-A"],
        ["update", "secretproviders.cynodeai.io", "-A"],
        ["patch", "secretproviders.cynodeai.io", "-A"],
        ["create", "pods", "-n", TENANT_NS],
        ["create", "pods", "-n", NS],
        ["get", "pods", "-n", NS],
        ["create", "deployments.apps", "-n", NS],
        ["create", "serviceaccounts", "-n", TENANT_NS],
        ["get", "serviceaccounts", "-n", TENANT_NS],
        ["update", "namespaces", "-A"],
        ["delete", "namespaces", "-A"],
        ["create", "namespaces", "-A"],
        ["delete", "leases.coordination.k8s.io", "-n", NS],
        ["list", "leases.coordination.k8s.io", "-n", NS],
        ["create", "leases.coordination.k8s.io", "-n", TENANT_NS],
        ["update", "events", "-n", TENANT_NS],
        ["delete", "events", "-n", TENANT_NS],
        ["create", "tokenreviews.authentication.k8s.io", "-A"],
        ["create", "subjectaccessreviews.authorization.k8s.io", "-A"],
        ["impersonate", "users", "-A"],
        ["impersonate", "groups", "-A"],
        ["impersonate", "serviceaccounts", "-A"],
        ["impersonate", "serviceaccounts/default", "-n", TENANT_NS],
        ["impersonate", `serviceaccounts/${SA}`, "-n", NS],
        ["impersonate", "serviceaccounts/default", "-n", "kube-system"],
        ["bind", "clusterroles.rbac.authorization.k8s.io", "-A"],
        ["escalate", "clusterroles.rbac.authorization.k8s.io", "-A"],
        ["create", "rolebindings.rbac.authorization.k8s.io", "-n", NS],
        ["update", "customresourcedefinitions.apiextensions.k8s.io", "-A"],
        ["update", "validatingwebhookconfigurations.admissionregistration.k8s.io", "-A"],
        ["*", "*", "-A"],
        ["*", "*", "-n", NS],
        ["*", "connectors.cynodeai.io", "-n", TENANT_NS],
        ["*", "secrets", "-n", NS],
        ["get", "*", "-A"],
        ["create", "*", "-n", TENANT_NS],
      ];
      const answers = await Promise.all(checks.map(async (c) => [c.join(" "), await canI(c)]));
      expect(answers.filter(([, a]) => a !== "no")).toEqual([]);
    });
  });

  describe("the gateway, as its own ServiceAccount", () => {
    const canI = (args: string[]) => canIAs(GW_AS, args);

    it("can do everything the gateway needs, everywhere (ClusterRole)", async () => {
      const checks = EXPECTATIONS.gateway.clusterRole.flatMap((e) =>
        e.verbs.flatMap((v) => [...target(e, v, ["-A"]), ...target(e, v, ["-n", TENANT_NS])]),
      );
      expect(checks.length).toBeGreaterThan(15);
      const answers = await Promise.all(checks.map(async (c) => [c.join(" "), await canI(c)]));
      expect(answers.filter(([, a]) => a !== "yes")).toEqual([]);
    });

    it("can do what its Role grants in the release namespace only", async () => {
      const role = EXPECTATIONS.gateway.role;
      const checks = role.flatMap((e) => e.verbs.flatMap((v) => target(e, v, ["-n", NS])));
      const elsewhere = role.flatMap((e) =>
        e.verbs.flatMap((v) => [...target(e, v, ["-n", TENANT_NS]), ...target(e, v, ["-A"])]),
      );
      const yes = await Promise.all(checks.map(async (c) => [c.join(" "), await canI(c)]));
      expect(yes.filter(([, a]) => a !== "yes")).toEqual([]);
      const no = await Promise.all(elsewhere.map(async (c) => [c.join(" "), await canI(c)]));
      expect(no.filter(([, a]) => a !== "no")).toEqual([]);
    });

    it("cannot read Secrets: none cluster-wide, none elsewhere, none in its namespace but its two keys", async () => {
      const checks = [
        ["get", "secrets", "-A"],
        ["list", "secrets", "-A"],
        ["watch", "secrets", "-A"],
        ["get", "secrets", "-n", TENANT_NS],
        ["list", "secrets", "-n", TENANT_NS],
        ["get", `secrets/${APPROVAL_SECRET}`, "-n", TENANT_NS],
        ["list", "secrets", "-n", NS],
        ["watch", "secrets", "-n", NS],
        // The database URL and the TLS certificate reach it from the kubelet, not the API.
        ["get", "secrets/connector-db", "-n", NS],
        ["get", `secrets/${GATEWAY}-tls`, "-n", NS],
        ["get", `secrets/${RELEASE}-webhook-tls`, "-n", NS],
        ["update", `secrets/${APPROVAL_SECRET}`, "-n", NS],
        ["patch", `secrets/${APPROVAL_SECRET}`, "-n", NS],
        ["delete", `secrets/${APPROVAL_SECRET}`, "-n", NS],
        ["delete", `secrets/${FINGERPRINT_SECRET}`, "-n", NS],
        ["create", "secrets", "-n", TENANT_NS],
      ];
      const answers = await Promise.all(checks.map(async (c) => [c.join(" "), await canI(c)]));
      expect(answers.filter(([, a]) => a !== "no")).toEqual([]);
    });

    it("cannot write Connectors or their status, get them past its caches, write Events or Leases, or anything else", async () => {
      const checks = [
        ["get", "connectors.cynodeai.io", "-n", TENANT_NS],
        ["create", "connectors.cynodeai.io", "-n", TENANT_NS],
        ["update", "connectors.cynodeai.io", "-n", TENANT_NS],
        ["patch", "connectors.cynodeai.io", "-n", TENANT_NS],
        ["delete", "connectors.cynodeai.io", "-n", TENANT_NS],
        ["deletecollection", "connectors.cynodeai.io", "-n", TENANT_NS],
        ["update", "connectors.cynodeai.io", "--subresource=status", "-n", TENANT_NS],
        ["patch", "connectors.cynodeai.io", "--subresource=status", "-n", TENANT_NS],
        ["patch", "connectors.cynodeai.io", "--subresource=status", "-A"],
        // The verbs callers need: the gateway asks RBAC about them, it does not hold them.
        ["invoke", "connectors.cynodeai.io", "-n", TENANT_NS],
        ["approve", "connectors.cynodeai.io", "-n", TENANT_NS],
        ["get", "connectortypes.cynodeai.io", "-A"],
        ["update", "connectortypes.cynodeai.io", "-A"],
        ["patch", "connectorpolicytemplates.cynodeai.io", "-A"],
        ["patch", "secretproviders.cynodeai.io", "-A"],
        ["patch", "secretproviders.cynodeai.io", "--subresource=status", "-A"],
        ["create", "events", "-n", TENANT_NS],
        ["create", "events", "-n", NS],
        ["create", "events.events.k8s.io", "-n", TENANT_NS],
        ["get", "leases.coordination.k8s.io", "-n", NS],
        ["create", "leases.coordination.k8s.io", "-n", NS],
        ["update", "leases.coordination.k8s.io", "-n", NS],
        ["get", "namespaces", "-A"],
        ["update", "namespaces", "-A"],
        ["create", "serviceaccounts", "-n", TENANT_NS],
        ["get", "serviceaccounts", "-n", TENANT_NS],
        ["create", "pods", "-n", NS],
        ["get", "pods", "-n", NS],
        ["create", "pods", "--subresource=exec", "-n", NS],
        ["create", "deployments.apps", "-n", NS],
        ["impersonate", "users", "-A"],
        ["impersonate", "serviceaccounts", "-A"],
        ["bind", "clusterroles.rbac.authorization.k8s.io", "-A"],
        ["escalate", "clusterroles.rbac.authorization.k8s.io", "-A"],
        ["create", "rolebindings.rbac.authorization.k8s.io", "-n", NS],
        ["update", "customresourcedefinitions.apiextensions.k8s.io", "-A"],
        ["create", "certificatesigningrequests.certificates.k8s.io", "-A"],
        ["*", "*", "-A"],
        ["*", "*", "-n", NS],
        ["*", "connectors.cynodeai.io", "-n", TENANT_NS],
        ["*", "secrets", "-n", NS],
        ["get", "*", "-A"],
        ["create", "*", "-n", TENANT_NS],
      ];
      const answers = await Promise.all(checks.map(async (c) => [c.join(" "), await canI(c)]));
      expect(answers.filter(([, a]) => a !== "no")).toEqual([]);
    });

    it("runs with these grants alone: ready, serves callers, and asks the API server only for what they grant", async () => {
      const docs = (loadAll(manifests) as Array<K8sObject | null>).filter((d): d is K8sObject => d !== null);
      const rbac = {
        cluster: (named(docs, "ClusterRole", GATEWAY) as unknown as { rules: PolicyRule[] }).rules,
        role: (named(docs, "Role", GATEWAY) as unknown as { rules: PolicyRule[] }).rules,
      };
      // Callers: one allowed to get a Connector, one allowed nothing; and a Connector to ask about.
      // (No controller serves the webhook "installs for real" applied: it goes first.)
      await kubectlOk(["delete", "validatingwebhookconfiguration", RELEASE, "--ignore-not-found"]);
      await kubectlOk(["create", "serviceaccount", "gw-reader", "-n", TENANT_NS]);
      await kubectlOk(["create", "serviceaccount", "gw-stranger", "-n", TENANT_NS]);
      await kubectlOk([
        "create",
        "role",
        "gw-reader",
        "-n",
        TENANT_NS,
        "--verb=get",
        "--resource=connectors.cynodeai.io",
      ]);
      await kubectlOk([
        "create",
        "rolebinding",
        "gw-reader",
        "-n",
        TENANT_NS,
        "--role=gw-reader",
        `--serviceaccount=${TENANT_NS}:gw-reader`,
      ]);
      await kubectlOk(
        ["apply", "-f", "-"],
        JSON.stringify({
          apiVersion: "cynodeai.io/v1alpha1",
          kind: "Connector",
          metadata: { name: "gw-probe", namespace: TENANT_NS },
          spec: { type: "http", typeVersion: 2, owner: { type: "group", id: "ops" }, policyTemplate: "x" },
        }),
      );
      const tokenOf = async (ns: string, sa: string) =>
        (await kubectlOk(["create", "token", sa, "-n", ns, "--duration=1h"])).stdout.trim();

      // A kubeconfig that is the gateway's ServiceAccount and nothing else.
      const kubeconfig = path.join(helmHome, "gateway-sa.kubeconfig");
      fs.writeFileSync(
        kubeconfig,
        JSON.stringify({
          apiVersion: "v1",
          kind: "Config",
          clusters: [
            { name: "test", cluster: { server: cp.server, "certificate-authority-data": caBundle } },
          ],
          users: [{ name: GATEWAY, user: { token: await tokenOf(NS, GATEWAY) } }],
          contexts: [{ name: "gateway", context: { cluster: "test", user: GATEWAY } }],
          "current-context": "gateway",
        }),
        { mode: 0o600 },
      );
      // The chart's own arguments and environment (POD_NAMESPACE = the release namespace), on
      // loopback ports.
      const container = gatewayContainerOf(docs);
      const config = loadGatewayConfig(
        [
          ...container.args,
          "--kubeconfig",
          kubeconfig,
          "--bind-address=127.0.0.1:0",
          "--metrics-bind-address=127.0.0.1:0",
          "--health-probe-bind-address=127.0.0.1:0",
        ],
        { POD_NAMESPACE: NS, DATABASE_URL: "" },
      );
      expect(config.keyNamespace).toBe(NS);
      const db = await startPostgres();
      const lines: string[] = [];
      const log = createLogger({
        level: "debug",
        name: "connector-gateway",
        destination: { write: (l: string) => void lines.push(l) } as unknown as NodeJS.WritableStream,
      });
      const gateway = await startGateway({ ...config, databaseUrl: db.url }, log);
      try {
        const base = `http://${gateway.addresses.api}`;
        // Ready: its informer caches listed and watch with these grants, PostgreSQL answers.
        await eventually(
          async () => (await fetch(`http://${gateway.addresses.health}/readyz`)).status === 200,
          "the gateway's /readyz",
        );
        const get = async (p: string, bearer?: string) => {
          const res = await fetch(base + p, bearer ? { headers: { authorization: `Bearer ${bearer}` } } : {});
          return { status: res.status, body: (await res.json()) as Record<string, unknown> };
        };
        const reader = await tokenOf(TENANT_NS, "gw-reader");
        const stranger = await tokenOf(TENANT_NS, "gw-stranger");
        // Who the caller is: TokenReview, as the gateway.
        expect((await get("/v1/catalog")).status).toBe(401);
        expect((await get("/v1/catalog", "not-a-token")).status).toBe(401);
        const catalog = await get("/v1/catalog", stranger);
        expect(catalog.status, JSON.stringify(catalog.body)).toBe(200);
        expect((catalog.body.types as Array<{ name: string }>).map((t) => t.name)).toContain("http");
        // What they may do: SubjectAccessReview, as the gateway; the Connector from its cache.
        const denied = await get(`/v1/namespaces/${TENANT_NS}/connectors/gw-probe`, stranger);
        expect(denied.status, JSON.stringify(denied.body)).toBe(403);
        expect(JSON.stringify(denied.body)).toContain(
          `system:serviceaccount:${TENANT_NS}:gw-stranger may not get`,
        );
        const allowed = await eventually(async () => {
          const r = await get(`/v1/namespaces/${TENANT_NS}/connectors/gw-probe`, reader);
          return r.status === 200 ? r : undefined;
        }, "the reader's GET of the Connector through the gateway");
        expect(allowed.body).toMatchObject({ namespace: TENANT_NS, name: "gw-probe", type: "http" });
      } finally {
        await gateway.stop();
        await db.stop();
      }
      // It made its HMAC keys in the release namespace (the approval key is its own).
      await kubectlOk(["get", "secret", APPROVAL_SECRET, FINGERPRINT_SECRET, "-n", NS]);
      expect(lines.filter((l) => l.includes(GW_AS) && /forbidden|cannot/i.test(l))).toEqual([]);

      // The audit log: every request it made is granted by the chart's rules, and every rule
      // was used but one: TokenRequest, made only when a call resolves credentials through
      // Vault (proven above with can-i; the controller's least-privilege suite exercises it).
      const cells = (where: string, rules: PolicyRule[]) =>
        grants(rules).map((g) => `${where}|${g.replace(/\|\*any\*\|/, "|*|")}`);
      const all = [...cells("cluster", rbac.cluster), ...cells("role", rbac.role)];
      const used = new Set<string>();
      const outside = new Set<string>();
      const nonResource = new Set<string>();
      let requests = 0;
      for (const line of fs.readFileSync(auditLog, "utf8").split("\n")) {
        if (!line.trim()) continue;
        const e = JSON.parse(line) as {
          stage: string;
          verb: string;
          requestURI: string;
          user: { username: string };
          objectRef?: {
            apiGroup?: string;
            resource?: string;
            subresource?: string;
            namespace?: string;
            name?: string;
          };
          responseStatus?: { code?: number };
        };
        if (e.user.username !== GW_AS) continue;
        if (e.stage !== "ResponseComplete" && e.stage !== "ResponseStarted") continue;
        const o = e.objectRef;
        if (!o?.resource) {
          nonResource.add(`${e.verb} ${e.requestURI.split("?")[0]}`);
          continue;
        }
        requests++;
        const group = o.apiGroup || "core";
        const resource = o.subresource ? `${o.resource}/${o.subresource}` : o.resource;
        const granting = all.filter((c) => {
          const [where, g, res, n, v] = c.split("|") as [string, string, string, string, string];
          if (where === "role" && o.namespace !== NS) return false;
          return g === group && res === resource && v === e.verb && (n === "*" || n === o.name);
        });
        if (granting.length === 0 || e.responseStatus?.code === 403)
          outside.add(
            `${e.verb} ${group}/${resource} ns=${o.namespace ?? ""} name=${o.name ?? ""} (${e.responseStatus?.code})`,
          );
        granting.forEach((c) => used.add(c));
      }
      expect(requests, "the audit log recorded the gateway's requests").toBeGreaterThan(10);
      expect([...outside], "requests the chart's RBAC does not grant").toEqual([]);
      // Only a call's credentials use these (a Vault login, a kubernetes provider's read as the
      // tenant); this run has no provider to call: can-i proves them above.
      expect(all.filter((c) => !used.has(c))).toEqual([
        "cluster|core|serviceaccounts/token|*|create",
        "cluster|core|serviceaccounts|connector-reader|impersonate",
      ]);
      expect([...nonResource].filter((p) => !/^get \/(api|apis|version|openapi)(\/|$)/.test(p))).toEqual([]);
    }, 240_000);
  });
});
