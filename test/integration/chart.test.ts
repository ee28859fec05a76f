// The Helm chart against the real helm (hack/testbin.sh helm, built from the Go module
// proxy) and the real test control plane: it lints, renders, is accepted by the API
// server (PodSecurity "restricted" included), and its ServiceAccount can do exactly what
// the controller needs (charts/connector-controller/rbac-expectations.yaml), proven with
// `kubectl auth can-i --as=system:serviceaccount:...`, and nothing it must not.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { load, loadAll } from "js-yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FLAGS, loadConfig } from "../../controller/src/config.ts";
import { REPO_ROOT, startControlPlane, type ControlPlane } from "../support/controlPlane.ts";
import { runCommand, type CommandResult } from "../support/process.ts";
import { testbinDir } from "../support/testbin.ts";

const CHART = path.join(REPO_ROOT, "charts", "connector-controller");
const RELEASE = "connector-controller";
const NS = "connector-system";
const TENANT_NS = "team-a";
const SA = "connector-controller";
const AS = `system:serviceaccount:${NS}:${SA}`;
const FINGERPRINT_SECRET = "connector-controller-fingerprint-key";
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

const EXPECTATIONS = load(fs.readFileSync(path.join(CHART, "rbac-expectations.yaml"), "utf8")) as {
  clusterRole: Expectation[];
  role: Expectation[];
};

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
  args: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  ports: Array<{ name: string; containerPort: number }>;
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext: Record<string, unknown>;
  volumeMounts: Array<{ name: string; mountPath: string }>;
  image: string;
}
interface DeploymentSpec {
  replicas: number;
  strategy?: { type: string };
  template: {
    spec: {
      serviceAccountName: string;
      securityContext: Record<string, unknown>;
      containers: Container[];
      volumes: Array<{ name: string; emptyDir?: object; persistentVolumeClaim?: { claimName: string } }>;
    };
  };
}
const deploymentOf = (docs: K8sObject[]) => one(docs, "Deployment").spec as DeploymentSpec;
const containerOf = (docs: K8sObject[]) => deploymentOf(docs).template.spec.containers[0]!;

// ---------------------------------------------------------------------------------------
let helmBin: string;
let helmHome: string;
let cp: ControlPlane;
let caBundle: string;

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
  // The chart's own copies of the CRDs, installed first (what `helm install` does).
  cp = await startControlPlane({ crdDir: path.join(CHART, "crds") });
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
});

describe("helm template", () => {
  it("renders the controller, its RBAC, metrics Service and the built-in catalog by default", async () => {
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

  it("runs ONE replica on the embedded PGlite database, in an emptyDir or a PVC", async () => {
    const docs = await render();
    const d = deploymentOf(docs);
    const c = containerOf(docs);
    expect(d.replicas).toBe(1);
    expect(byKind(docs, "PodDisruptionBudget")).toEqual([]);
    expect(c.args).toContain("--data-dir=/var/lib/connector-controller/pglite");
    expect(c.env?.some((e) => e.name === "DATABASE_URL")).toBe(false);
    expect(c.volumeMounts).toContainEqual({ name: "data", mountPath: "/var/lib/connector-controller" });
    expect(d.template.spec.volumes).toContainEqual({ name: "data", emptyDir: {} });

    const pvc = await render(["--set", "database.embedded.persistence.enabled=true"]);
    expect(one(pvc, "PersistentVolumeClaim").metadata.name).toBe(`${RELEASE}-data`);
    expect(deploymentOf(pvc).strategy).toEqual({ type: "Recreate" });
    expect(deploymentOf(pvc).template.spec.volumes).toContainEqual({
      name: "data",
      persistentVolumeClaim: { claimName: `${RELEASE}-data` },
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
    manifests = await renderText([...PROD, "--set", `webhook.caBundle=${caBundle}`], true);
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
      ]),
    );
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
    const embedded = await helm([
      "install",
      RELEASE,
      CHART,
      "-n",
      NS,
      "--kubeconfig",
      cp.kubeconfigPath,
      "--dry-run=server",
    ]);
    expect(embedded.code, embedded.stderr).toBe(0);
    expect(embedded.stdout).toMatch(/Replicas: 1\b/);
    expect(embedded.stdout).toContain("it is LOST when the pod goes");
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
  });

  describe("kubectl auth can-i as the controller's ServiceAccount", () => {
    // Our resources whose CRD the chart does not ship yet (kubectl cannot resolve them, so
    // they are asked about with a SubjectAccessReview, which RBAC answers the same way).
    const unserved = new Set(
      ["secretproviders"].filter((p) => !fs.existsSync(path.join(CHART, "crds", `${p}.cynodeai.io.yaml`))),
    );

    /** The same question as `kubectl auth can-i <args>`, as a SubjectAccessReview. */
    const review = async (args: string[]): Promise<string> => {
      const [verb, what] = args as [string, string];
      const [typed, name] = what.split("/") as [string, string | undefined];
      const dot = typed.indexOf(".");
      const ns = args.includes("-A") ? "" : (args[args.indexOf("-n") + 1] ?? "");
      const sub = args.find((a) => a.startsWith("--subresource="))?.slice("--subresource=".length);
      const sar = {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SubjectAccessReview",
        spec: {
          user: AS,
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

    const canI = async (args: string[]): Promise<string> => {
      const resource = args[1]!.split(/[./]/)[0]!;
      if (unserved.has(resource)) return review(args);
      const r = await cp.kubectl(["auth", "can-i", ...args, `--as=${AS}`]);
      // exit 0 = yes, 1 = no; anything else (or other output) is an error of the check itself.
      const answer = r.stdout.trim();
      expect(["yes", "no"], `can-i ${args.join(" ")}: ${r.stderr}`).toContain(answer);
      // A "no" about a resource the server does not serve would prove nothing (users, for
      // impersonation, is the one virtual resource asked about).
      if (resource !== "users")
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
        ["impersonate", "serviceaccounts", "-A"],
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
});
