// Least privilege: the controller runs with exactly the chart's RBAC. The chart's
// ServiceAccount, ClusterRole, Role and bindings are rendered by the real helm (`helm
// template --show-only`) and applied; the controller process authenticates with that
// ServiceAccount's token and goes through a batch with a SIGKILL in the middle, deletions
// (one Orphan) and refused specs, ending with the suite's invariants and not one
// "forbidden" in its log: what it has is enough. A compact `kubectl auth can-i` matrix
// shows that what it must not have, it has not. (The complete matrix, rule by rule against
// charts/connector-controller/rbac-expectations.yaml, is test/integration/chart.test.ts.)
//
// The grants are derived from the calls, not from a list: the API server keeps an audit log
// of every request made as the ServiceAccount (audit policy level Metadata), and the last
// test matches each request against the rendered ClusterRole and Role: a request no rule
// grants, or a rule (resource, verb, name) no request used, fails it. The scenario covers
// every path that needs a grant, including a Vault SecretProvider (its status) and a
// Connector that resolves credentials through it (a TokenRequest for the tenant's service
// account; the Vault address answers nothing, which is all these two need), and a
// kubernetes SecretProvider whose Connector's Secret is read by impersonating the tenant's
// reader (the audit log records the impersonation on the request the reader made: that is
// the use of the impersonate grant; the request itself is the reader's, not the controller's).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as yaml from "js-yaml";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../controller/src/api/paths.ts";
import type { Connector } from "../../controller/src/api/types.ts";
import { kubectlOk } from "../support/cluster.ts";
import type { ControlPlane } from "../support/controlPlane.ts";
import type { ControllerProcess } from "../support/controllerProcess.ts";
import { runCommand } from "../support/process.ts";
import { testbinDir } from "../support/testbin.ts";
import { eventually } from "../support/wait.ts";
import { startWorld, type World as TestWorld } from "../support/world.ts";
import {
  createAll,
  httpConnector,
  kindFor,
  Kube,
  SCENARIO_TIMEOUT,
  size,
  World,
  type Kind,
} from "./harness.ts";
import { checkInvariants, describeReport } from "./invariants.ts";
import { Tally } from "./tally.ts";

const RELEASE_NS = "connector-system";
const SA = "connector-controller";
const AS = `system:serviceaccount:${RELEASE_NS}:${SA}`;
const TENANT = "lp-tenant";
// Namespaces outside the invariants' world: a Connector whose credentials come from Vault,
// and one whose credentials are a Kubernetes Secret read as the tenant's reader.
const VAULT_TENANT = "lp-vault";
const KUBE_TENANT = "lp-kube";
const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    users: ["${AS}"]
  - level: None
`;
const CHART = join(projectRoot, "charts/connector-controller");

let testWorld: TestWorld;
let cp: ControlPlane;
let kube: Kube;
let sql: pg.Pool;
let saKubeconfig: string;
let auditDir: string;
let renderedRbac: string;
const tally = new Tally("least-privilege");

const kubectl = (args: string[], input?: string) => kubectlOk(cp, args, input);

beforeAll(async () => {
  auditDir = mkdtempSync(join(tmpdir(), "lp-audit-"));
  writeFileSync(join(auditDir, "policy.yaml"), AUDIT_POLICY);
  testWorld = await startWorld({
    target: true,
    namespaces: [RELEASE_NS, TENANT],
    controlPlane: {
      apiServerArgs: [
        `--audit-policy-file=${join(auditDir, "policy.yaml")}`,
        `--audit-log-path=${join(auditDir, "audit.log")}`,
        "--audit-log-format=json",
        "--audit-log-mode=blocking",
      ],
    },
  });
  ({ cp, sql } = testWorld);
  kube = new Kube(cp.kubeconfigPath);

  // The chart's own RBAC and ServiceAccount, rendered by helm (built once by `make testbin`).
  const helmDir = await testbinDir("helm", ["helm"]);
  const rendered = await runCommand(join(helmDir, "helm"), [
    "template",
    "connector-controller",
    CHART,
    "--namespace",
    RELEASE_NS,
    "--show-only",
    "templates/rbac.yaml",
    "--show-only",
    "templates/serviceaccount.yaml",
  ]);
  if (rendered.code !== 0) throw new Error(`helm template: ${rendered.stderr}`);
  const kinds = (yaml.loadAll(rendered.stdout) as { kind?: string }[])
    .filter(Boolean)
    .map((d) => d.kind)
    .sort();
  expect(kinds).toEqual(["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount"]);
  await kubectl(["apply", "-f", "-"], rendered.stdout);
  renderedRbac = rendered.stdout;

  // A kubeconfig that is that ServiceAccount and nothing else.
  const token = (await kubectl(["create", "token", SA, "-n", RELEASE_NS, "--duration=2h"])).trim();
  const admin = yaml.load(readFileSync(cp.kubeconfigPath, "utf8")) as {
    clusters: { cluster: { server: string; "certificate-authority-data": string } }[];
  };
  saKubeconfig = join(cp.dir, "controller-sa.kubeconfig");
  writeFileSync(
    saKubeconfig,
    yaml.dump({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "test", cluster: admin.clusters[0]!.cluster }],
      users: [{ name: SA, user: { token } }],
      contexts: [{ name: "sa", context: { cluster: "test", user: SA, namespace: RELEASE_NS } }],
      "current-context": "sa",
    }),
    { mode: 0o600 },
  );
}, 300_000);

afterAll(async () => {
  await testWorld?.stop();
  if (auditDir) rmSync(auditDir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------
// The audit log: what the controller's ServiceAccount asked of the API server
// ---------------------------------------------------------------------------------------
interface AuditEvent {
  stage: string;
  verb: string;
  requestURI: string;
  user: { username: string };
  impersonatedUser?: { username?: string };
  objectRef?: {
    apiGroup?: string;
    resource?: string;
    subresource?: string;
    namespace?: string;
    name?: string;
  };
  responseStatus?: { code?: number };
}

interface ApiRequest {
  verb: string;
  group: string;
  /** resource or resource/subresource */
  resource: string;
  namespace: string;
  name: string;
  code: number;
}

function auditedRequests(): { resource: ApiRequest[]; nonResource: string[] } {
  const resource: ApiRequest[] = [];
  const nonResource = new Set<string>();
  const text = readFileSync(join(auditDir, "audit.log"), "utf8");
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const e = JSON.parse(line) as AuditEvent;
    if (e.user.username !== AS) continue;
    if (e.stage !== "ResponseComplete" && e.stage !== "ResponseStarted") continue;
    if (e.impersonatedUser) {
      // The controller acted as someone else: its own request was `impersonate` on that
      // service account (anything else is refused before the request is authorized); the
      // request itself was authorized as the impersonated user, not the controller.
      const sa = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(e.impersonatedUser.username ?? "");
      resource.push({
        verb: "impersonate",
        group: "",
        resource: sa ? "serviceaccounts" : "users",
        namespace: sa?.[1] ?? "",
        name: sa?.[2] ?? e.impersonatedUser.username ?? "",
        code: 200,
      });
      continue;
    }
    const o = e.objectRef;
    if (!o?.resource) {
      nonResource.add(`${e.verb} ${e.requestURI.split("?")[0]}`);
      continue;
    }
    resource.push({
      verb: e.verb,
      group: o.apiGroup ?? "",
      resource: o.subresource ? `${o.resource}/${o.subresource}` : o.resource,
      namespace: o.namespace ?? "",
      name: o.name ?? "",
      code: e.responseStatus?.code ?? 0,
    });
  }
  return { resource, nonResource: [...nonResource].sort() };
}

interface RbacRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
}

/** One cell of a rule: where|group|resource|name (or *)|verb. */
function cells(where: string, rules: RbacRule[]): string[] {
  return rules.flatMap((r) =>
    (r.apiGroups ?? []).flatMap((g) =>
      (r.resources ?? []).flatMap((res) =>
        (r.resourceNames?.length ? r.resourceNames : ["*"]).flatMap((n) =>
          r.verbs.map((v) => `${where}|${g || "core"}|${res}|${n}|${v}`),
        ),
      ),
    ),
  );
}

/** The cells a request is granted by: Role cells only in the release namespace. */
function grantingCells(req: ApiRequest, all: string[]): string[] {
  return all.filter((cell) => {
    const [where, g, res, n, v] = cell.split("|") as [string, string, string, string, string];
    if (where === "role" && req.namespace !== RELEASE_NS) return false;
    return (
      (g === "core" ? "" : g) === req.group &&
      res === req.resource &&
      v === req.verb &&
      (n === "*" || n === req.name)
    );
  });
}

/** A SecretProvider whose Vault answers nothing, and a Connector that resolves through it. */
async function vaultTenant(): Promise<void> {
  await kube.ensureNamespace(VAULT_TENANT);
  await kubectl(["create", "serviceaccount", "vault-reader", "-n", VAULT_TENANT]);
  await kubectl(
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "cynodeai.io/v1alpha1",
      kind: "SecretProvider",
      metadata: { name: "lp-vault" },
      spec: {
        vault: {
          address: "https://127.0.0.1:1",
          kv: { mount: "kv" },
          auth: { kubernetes: { role: "lp-vault", serviceAccountName: "vault-reader" } },
        },
        allowedNamespaces: [VAULT_TENANT],
      },
    }),
  );
  const c = httpConnector(VAULT_TENANT, "vault-creds", testWorld.target.url);
  c.spec.credentials = { mode: "secretRef", secretRef: { provider: "lp-vault", name: "vault-creds" } };
  await kube.create(c);
  await eventually(
    () => {
      const used = auditedRequests().resource.map((r) => `${r.verb} ${r.resource}`);
      return used.includes("create serviceaccounts/token") && used.includes("patch secretproviders/status");
    },
    "a TokenRequest for the tenant and the provider's status",
    60_000,
  );
}

/** A kubernetes SecretProvider and a Connector whose Secret is read as its namespace's reader. */
async function kubeTenant(): Promise<void> {
  await kube.ensureNamespace(KUBE_TENANT);
  await kubectl(["create", "serviceaccount", "connector-reader", "-n", KUBE_TENANT]);
  await kubectl(["create", "secret", "generic", "kube-creds", "-n", KUBE_TENANT, "--from-literal=token=lp"]);
  await kubectl([
    "create",
    "role",
    "connector-secrets-reader",
    "-n",
    KUBE_TENANT,
    "--verb=get",
    "--resource=secrets",
    "--resource-name=kube-creds",
  ]);
  await kubectl([
    "create",
    "rolebinding",
    "connector-secrets-reader",
    "-n",
    KUBE_TENANT,
    "--role=connector-secrets-reader",
    `--serviceaccount=${KUBE_TENANT}:connector-reader`,
  ]);
  await kubectl(
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "cynodeai.io/v1alpha1",
      kind: "SecretProvider",
      metadata: { name: "lp-kube" },
      spec: { kubernetes: { serviceAccountName: "connector-reader" }, allowedNamespaces: [KUBE_TENANT] },
    }),
  );
  const c = httpConnector(KUBE_TENANT, "kube-creds", testWorld.target.url);
  c.spec.credentials = { mode: "secretRef", secretRef: { provider: "lp-kube", name: "kube-creds" } };
  await kube.create(c);
  await eventually(
    () =>
      auditedRequests().resource.some(
        (r) => r.verb === "impersonate" && r.namespace === KUBE_TENANT && r.name === "connector-reader",
      ),
    "the tenant's Secret read as its reader",
    60_000,
  );
}

describe("least privilege", () => {
  it(
    "the controller does its whole job with the chart's RBAC alone, through a SIGKILL, and is never forbidden anything",
    async () => {
      await tally.scenario("least privilege", "controller as the chart's ServiceAccount", async (r) => {
        const world = new World();
        world.namespaces.add(TENANT);
        const procs: ControllerProcess[] = [];
        const start = (name: string) => {
          const p = testWorld.spawnController({
            kubeconfig: saKubeconfig,
            name,
            namespaces: [], // all namespaces, as the chart runs it
            args: [
              "--leader-elect",
              "--leader-election-namespace",
              RELEASE_NS,
              "--leader-election-id",
              "connector-controller",
            ],
          });
          procs.push(p);
          return p;
        };
        // spawnController passes --watch-namespaces with the (empty) list: all namespaces.
        const first = start("lp-1");
        await first.started();
        await vaultTenant();
        await kubeTenant();
        const items: { doc: Connector; kind: Kind }[] = Array.from({ length: size(16, 40) }, (_, i) => ({
          doc: httpConnector(TENANT, `lp${i}`, testWorld.target.url, kindFor(i)),
          kind: kindFor(i),
        }));
        const creating = createAll(
          kube,
          items.map((x) => x.doc),
        );
        await eventually(() => first.count("instance created") >= 2, "the first instances", 60_000);
        await first.kill("SIGKILL");
        r.faults++;
        const created = await creating;
        created.forEach((c, i) => world.expectKind(c, items[i]!.kind));
        const second = start("lp-2");
        await second.started(90_000); // the killed leader's lease runs out first
        let report = await checkInvariants({ kube, sql, world, logs: () => procs.flatMap((p) => p.raw) });
        expect(report.violations, describeReport(report)).toEqual([]);
        for (const c of created.filter((_, i) => i % 3 === 0)) {
          await kube.delete(TENANT, c.metadata.name);
          world.deleted(c.metadata.uid!, world.get(c.metadata.uid!)!.want !== "stalled");
        }
        report = await checkInvariants({ kube, sql, world, logs: () => procs.flatMap((p) => p.raw) });
        r.violations += report.violations.length;
        r.secretBytes += report.secretBytes;
        expect(report.violations.length + report.secretBytes, describeReport(report)).toBe(0);

        const forbidden = procs
          .flatMap((p) => p.raw)
          .filter((l) => /forbidden|\b403\b|Unauthorized|\b401\b/i.test(l));
        expect(forbidden, "the controller was refused something it needs").toEqual([]);
        // The fingerprint key was created by the controller itself, in its own namespace.
        await kubectl(["get", "secret", "connector-controller-fingerprint-key", "-n", RELEASE_NS]);
        // Events were recorded in the tenant's namespace under its own identity.
        const events = JSON.parse(await kubectl(["get", "events", "-n", TENANT, "-o", "json"])) as {
          items: { reason: string }[];
        };
        expect(events.items.length).toBeGreaterThan(0);
        r.note = `${created.length} Connectors, ${events.items.length} Events, 0 forbidden`;
      });
    },
    SCENARIO_TIMEOUT,
  );

  it(
    "cannot do what it must not (compact can-i matrix; the full one is chart.test.ts)",
    async () => {
      await tally.scenario("least privilege", "kubectl auth can-i matrix", async (r) => {
        const expectations = yaml.load(readFileSync(join(CHART, "rbac-expectations.yaml"), "utf8")) as {
          clusterRole: { apiGroup: string; resource: string; resourceNames?: string[]; verbs: string[] }[];
        };
        const canI = async (args: string[]) => {
          const res = await cp.kubectl(["auth", "can-i", ...args, `--as=${AS}`]);
          return res.stdout.trim();
        };
        const qualify = (group: string, resource: string) => {
          const [res, sub] = resource.split("/");
          return [group ? `${res}.${group}` : res!, ...(sub ? [`--subresource=${sub}`] : [])];
        };
        const yes = expectations.clusterRole.flatMap((e) =>
          (e.resourceNames ?? [undefined]).flatMap((name) =>
            e.verbs.map((v) => {
              const [what, ...sub] = qualify(e.apiGroup, e.resource);
              return [v, name ? `${what}/${name}` : what!, ...sub, "-n", TENANT];
            }),
          ),
        );
        const no = [
          ["get", "secrets", "-n", TENANT],
          ["list", "secrets", "-A"],
          ["watch", "secrets", "-n", RELEASE_NS],
          ["get", "secrets/connector-db", "-n", RELEASE_NS],
          ["delete", "connectors.cynodeai.io", "-n", TENANT],
          ["create", "connectors.cynodeai.io", "-n", TENANT],
          ["update", "connectors.cynodeai.io", "-n", TENANT],
          ["patch", "connectortypes.cynodeai.io", "-A"],
          ["patch", "secretproviders.cynodeai.io", "-A"],
          ["create", "pods", "-n", TENANT],
          ["create", "serviceaccounts", "-n", TENANT],
          ["create", "rolebindings.rbac.authorization.k8s.io", "-n", RELEASE_NS],
          ["escalate", "clusterroles.rbac.authorization.k8s.io", "-A"],
          ["impersonate", "serviceaccounts", "-A"],
          ["impersonate", "serviceaccounts/default", "-n", TENANT],
          ["impersonate", `serviceaccounts/${SA}`, "-n", RELEASE_NS],
          ["impersonate", "users", "-A"],
          ["get", "secrets/kube-creds", "-n", KUBE_TENANT],
          ["create", "leases.coordination.k8s.io", "-n", TENANT],
          ["delete", "events", "-n", TENANT],
          ["*", "*", "-A"],
        ];
        const got = await Promise.all([
          ...yes.map(async (a) => [a.join(" "), "yes", await canI(a)] as const),
          ...no.map(async (a) => [a.join(" "), "no", await canI(a)] as const),
        ]);
        const wrong = got.filter(([, want, answer]) => want !== answer);
        r.violations += wrong.length;
        r.note = `${yes.length} needed (yes), ${no.length} forbidden (no)`;
        expect(wrong, "can-i answers that differ").toEqual([]);
      });
    },
    SCENARIO_TIMEOUT,
  );
  it(
    "grants exactly what the controller asked for: every audited request is granted, every grant was used",
    async () => {
      await tally.scenario("least privilege", "grants derived from the audit log", async (r) => {
        const docs = yaml.loadAll(renderedRbac) as Array<{ kind?: string; rules?: RbacRule[] } | null>;
        const rulesOf = (kind: string) => docs.find((d) => d?.kind === kind)?.rules ?? [];
        const all = [...cells("cluster", rulesOf("ClusterRole")), ...cells("role", rulesOf("Role"))];
        const { resource, nonResource } = auditedRequests();
        expect(resource.length, "the audit log recorded the controller's requests").toBeGreaterThan(50);

        const used = new Set<string>();
        const outside = new Set<string>();
        for (const req of resource) {
          const granting = grantingCells(req, all);
          if (granting.length === 0 || req.code === 403)
            outside.add(
              `${req.verb} ${req.group || "core"}/${req.resource} ns=${req.namespace} name=${req.name} (${req.code})`,
            );
          granting.forEach((c) => used.add(c));
        }
        const unused = all.filter((c) => !used.has(c));
        const distinct = new Set(resource.map((q) => `${q.verb} ${q.group}/${q.resource}`));
        r.note = `${resource.length} requests, ${distinct.size} distinct, ${all.length} grants all used`;
        expect([...outside], "requests the chart's RBAC does not grant").toEqual([]);
        expect(unused, "grants the controller never used: remove them from the chart").toEqual([]);
        // Outside resources, only discovery, which every authenticated user may do.
        expect(nonResource.filter((p) => !/^get \/(api|apis|version|openapi)(\/|$)/.test(p))).toEqual([]);
        r.violations += outside.size + unused.length;
      });
    },
    SCENARIO_TIMEOUT,
  );
});
