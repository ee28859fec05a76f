// Tenancy of the catalog: a Connector never uses a ConnectorType that is not approved for
// it. Retired versions, feature-gated types and versions without their flag, unknown and
// deleted types all stall (and a Connector that worked keeps its last valid generation in
// the database); type names with path tricks are refused by the API server. Two
// controllers shard the namespaces, one with the feature flag enabled, to show that the
// flag, not the namespace, decides. Kubernetes Secrets (the kubernetes SecretProvider): a
// Connector never reads another namespace's Secret, whatever name it tries, even where a
// careless RoleBinding would let its reader; a reader without a Role is refused by the API
// server (PermissionDenied). Also: the invariants themselves are checked to catch what they
// claim to (a ghost row, a secret in an Event, a wrong state).
import { createServer, type Server } from "node:http";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Connector, ConnectorType } from "../../controller/src/api/types.ts";
import type { ControlPlane } from "../support/controlPlane.ts";
import type { ControllerProcess } from "../support/controllerProcess.ts";
import type { HttpTarget } from "../support/httpTarget.ts";
import { listen } from "../support/net.ts";
import { eventually } from "../support/wait.ts";
import { startWorld, type World as TestWorld } from "../support/world.ts";
import {
  BEARER_SECRET,
  createAll,
  httpConnector,
  Kube,
  KUBE_A_SECRET,
  KUBE_B_SECRET,
  loadYaml,
  World,
  type Expectation,
  SCENARIO_TIMEOUT,
} from "./harness.ts";
import { checkInvariants, describeReport } from "./invariants.ts";
import { Tally } from "./tally.ts";

const PLAIN = "t-plain";
const FLAGGED = "t-flagged";
// The kubernetes provider's tenants: two with a Role for their reader, one without.
const KA = "t-ks-a";
const KB = "t-ks-b";
const KNOROLE = "t-ks-norole";
let testWorld: TestWorld;
let cp: ControlPlane;
let target: HttpTarget;
let kube: Kube;
let sql: pg.Pool;
const procs: ControllerProcess[] = [];
const world = new World();
const tally = new Tally("tenancy");

/** A copy of the http type under another name, changed by `edit`. */
function typeVariant(name: string, edit: (t: ConnectorType) => void): ConnectorType {
  const t = loadYaml<ConnectorType>("examples/types/http.yaml");
  t.metadata = { name };
  edit(t);
  return t;
}

async function applyType(t: ConnectorType): Promise<void> {
  const r = await cp.kubectl(["apply", "-f", "-"], { input: JSON.stringify(t) });
  if (r.code !== 0) throw new Error(`ConnectorType ${t.metadata.name}: ${r.stderr}`);
}

function using(ns: string, name: string, type: string, typeVersion = 2): Connector {
  const c = httpConnector(ns, name, target.url);
  c.spec.type = type;
  c.spec.typeVersion = typeVersion;
  if (typeVersion === 1) {
    // Version 1's schema predates healthPath and timeoutMs.
    const { healthPath: _h, timeoutMs: _t, ...v1 } = c.spec.config!;
    c.spec.config = v1;
  }
  return c;
}

async function create(
  items: { c: Connector; e: Omit<Expectation, "uid" | "ns" | "name"> }[],
): Promise<Connector[]> {
  const created = await createAll(
    kube,
    items.map((x) => x.c),
  );
  created.forEach((c, i) =>
    world.expect({ ...items[i]!.e, ns: c.metadata.namespace!, name: c.metadata.name, uid: c.metadata.uid! }),
  );
  return created;
}

beforeAll(async () => {
  testWorld = await startWorld({ target: true, namespaces: [PLAIN, FLAGGED] });
  ({ cp, sql, target } = testWorld);
  kube = new Kube(cp.kubeconfigPath);
  for (const ns of [PLAIN, FLAGGED]) world.namespaces.add(ns);
  const start = (name: string, ns: string, args: string[] = []) => {
    const p = testWorld.spawnController({ name, namespaces: [ns], args });
    procs.push(p);
    return p;
  };
  await Promise.all([
    start("plain-ctl", PLAIN).started(),
    start("flagged-ctl", FLAGGED, ["--enable-features", "rel-beta"]).started(),
  ]);
  await startAuthTarget();
  testWorld.defer("the auth target", () => new Promise((r) => authTarget.server!.close(r)));
}, 300_000);

// A target that knows each kubernetes tenant's token: 200 only to its own namespace's, and it
// remembers any request that carried another tenant's.
const TOKENS: Record<string, string> = { [KUBE_A_SECRET]: KA, [KUBE_B_SECRET]: KB };
const authTarget = {
  url: "",
  server: undefined as Server | undefined,
  requests: [] as { ns: string; owner: string | undefined }[],
  crossTenant: [] as string[],
};
async function startAuthTarget(): Promise<void> {
  authTarget.server = createServer((req, res) => {
    req.resume();
    const ns = (req.url ?? "").split("/")[1] ?? "";
    const owner = TOKENS[/^Bearer (.*)$/.exec(req.headers.authorization ?? "")?.[1] ?? ""];
    authTarget.requests.push({ ns, owner });
    if (owner !== undefined && owner !== ns) authTarget.crossTenant.push(`${ns} presented ${owner}'s token`);
    res.writeHead(owner === ns ? 200 : 401, { "content-type": "application/json" });
    res.end(owner === ns ? '{"ok":true}\n' : '{"error":"unauthorized"}\n');
  });
  authTarget.url = `http://127.0.0.1:${(await listen(authTarget.server)).port}`;
}

/** An http Connector with bearer auth whose token is key `token` of the Secret `secret` (provider rel-k8s). */
function kubeSecretConnector(ns: string, name: string, secret: string): Connector {
  const c = httpConnector(ns, name, `${authTarget.url}/${ns}`);
  c.spec.config = { ...c.spec.config, auth: { scheme: "bearer" } };
  c.spec.credentials = { mode: "secretRef", secretRef: { provider: "rel-k8s", name: secret } };
  c.spec.healthCheck = { intervalSeconds: 10, timeoutSeconds: 5 };
  return c;
}

async function kubectlApply(docs: object[]): Promise<void> {
  const r = await cp.kubectl(["apply", "-f", "-"], { input: docs.map((d) => JSON.stringify(d)).join("\n") });
  if (r.code !== 0) throw new Error(`kubectl apply: ${r.stderr}`);
}

/** A Role letting `reader` (of `readerNs`) get the Secrets `names` of `ns`. */
function readerGrant(
  ns: string,
  names: string[],
  readerNs = ns,
  binding = "connector-secrets-reader",
): object[] {
  return [
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "connector-secrets-reader", namespace: ns },
      rules: [{ apiGroups: [""], resources: ["secrets"], resourceNames: names, verbs: ["get"] }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: binding, namespace: ns },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "connector-secrets-reader" },
      subjects: [{ kind: "ServiceAccount", name: "connector-reader", namespace: readerNs }],
    },
  ];
}

afterAll(async () => {
  await testWorld?.stop();
});

const logs = () => procs.flatMap((p) => p.raw);

describe("tenancy: ConnectorTypes", () => {
  it(
    "never uses a type that is not approved for it: retired, feature-gated, unknown or deleted types stall",
    async () => {
      await tally.scenario("tenancy", "unapproved ConnectorTypes", async (r) => {
        await applyType(
          typeVariant("rel-retired", (t) => t.spec.versions.forEach((v) => (v.lifecycle = "retired"))),
        );
        await applyType(typeVariant("rel-gated", (t) => (t.spec.featureFlag = "rel-beta")));
        await applyType(
          typeVariant(
            "rel-vgated",
            (t) => (t.spec.versions.find((v) => v.version === 2)!.featureFlag = "rel-beta-v2"),
          ),
        );
        await applyType(typeVariant("rel-doomed", () => {}));
        await applyType(typeVariant("rel-retire-later", () => {}));

        const stalled = (reason: string) => ({ want: "stalled" as const, reason });
        const ready = { want: "ready" as const, enabled: true };
        let i = 0;
        const n = () => `u${i++}`;
        await create([
          { c: using(PLAIN, n(), "rel-retired"), e: stalled("RetiredTypeVersion") },
          { c: using(PLAIN, n(), "rel-retired", 1), e: stalled("RetiredTypeVersion") },
          { c: using(PLAIN, n(), "rel-gated"), e: stalled("FeatureDisabled") },
          { c: using(PLAIN, n(), "rel-vgated"), e: stalled("FeatureDisabled") },
          { c: using(PLAIN, n(), "rel-vgated", 1), e: { ...ready, enabled: true } }, // v1 is not gated (deprecated)
          { c: using(PLAIN, n(), "no-such-type"), e: stalled("UnknownType") },
          { c: using(PLAIN, n(), "http", 7), e: stalled("UnknownTypeVersion") },
          // The same types from the namespace whose controller enables rel-beta.
          { c: using(FLAGGED, n(), "rel-gated"), e: ready },
          { c: using(FLAGGED, n(), "rel-vgated"), e: stalled("FeatureDisabled") },
          { c: using(FLAGGED, n(), "rel-retired"), e: stalled("RetiredTypeVersion") },
        ]);
        const [doomed, later] = await create([
          { c: using(PLAIN, "doomed", "rel-doomed"), e: ready },
          { c: using(PLAIN, "later", "rel-retire-later"), e: ready },
        ]);
        r.badInputs += 12;

        // Type names with path and injection tricks never reach a controller.
        let refused = 0;
        for (const t of [
          "../http",
          "http/../imap",
          "HTTP",
          "http ",
          "http\u0000",
          "${http}",
          "{{http}}",
          "http;rm -rf",
        ]) {
          const res = await kube.tryCreate(using(PLAIN, `bad-${refused}`, t));
          expect(res.ok, `spec.type ${JSON.stringify(t)} accepted`).toBe(false);
          if (!res.ok) {
            expect(res.message).toMatch(/spec\.type/);
            world.messages.push(res.message);
          }
          refused++;
          r.badInputs++;
        }
        let report = await checkInvariants({ kube, sql, world, logs }, { timeoutMs: 90_000 });
        r.violations += report.violations.length;
        r.secretBytes += report.secretBytes;
        expect(report.violations.length + report.secretBytes, describeReport(report)).toBe(0);

        // Catalog changes under working Connectors: deleted and retired types stall them, and
        // their last valid generation stays in force.
        const del = await cp.kubectl(["delete", "connectortype", "rel-doomed"]);
        expect(del.code, del.stderr).toBe(0);
        await applyType(
          typeVariant("rel-retire-later", (t) => t.spec.versions.forEach((v) => (v.lifecycle = "retired"))),
        );
        world.expect({
          ...world.get(doomed!.metadata.uid!)!,
          want: "stalled",
          reason: "UnknownType",
          appliedGeneration: 1,
        });
        world.expect({
          ...world.get(later!.metadata.uid!)!,
          want: "stalled",
          reason: "RetiredTypeVersion",
          appliedGeneration: 1,
        });
        report = await checkInvariants({ kube, sql, world, logs }, { timeoutMs: 90_000 });
        r.violations += report.violations.length;
        r.secretBytes += report.secretBytes;
        expect(report.violations.length + report.secretBytes, describeReport(report)).toBe(0);

        // Approved again: it works again without a spec change.
        await applyType(typeVariant("rel-retire-later", () => {}));
        world.expect({
          ...world.get(later!.metadata.uid!)!,
          want: "ready",
          enabled: true,
          reason: undefined,
        });
        delete world.get(later!.metadata.uid!)!.appliedGeneration;
        report = await checkInvariants({ kube, sql, world, logs }, { timeoutMs: 90_000 });
        r.violations += report.violations.length;
        r.secretBytes += report.secretBytes;
        expect(report.violations.length + report.secretBytes, describeReport(report)).toBe(0);
        r.note = `${refused} type-name tricks refused by the API server`;
      });
    },
    SCENARIO_TIMEOUT,
  );
});

describe("tenancy: Kubernetes Secrets (the kubernetes SecretProvider)", () => {
  it(
    "a Connector never reads another namespace's Secret, whatever name it tries; a reader without a Role is refused by RBAC",
    async () => {
      await tally.scenario("tenancy", "cross-namespace Kubernetes Secrets (controller)", async (r) => {
        for (const ns of [KA, KB, KNOROLE]) {
          await kube.ensureNamespace(ns);
          world.namespaces.add(ns);
          const sa = await cp.kubectl(["create", "serviceaccount", "connector-reader", "-n", ns]);
          if (sa.code !== 0) throw new Error(sa.stderr);
        }
        const secretDoc = (ns: string, token: string) => ({
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name: "hook", namespace: ns },
          stringData: { token },
        });
        await kubectlApply([
          secretDoc(KA, KUBE_A_SECRET),
          secretDoc(KB, KUBE_B_SECRET),
          // The namespace without a Role holds A's token: its reader must never get it.
          secretDoc(KNOROLE, KUBE_A_SECRET),
          ...readerGrant(KA, ["hook"]),
          ...readerGrant(KB, ["hook"]),
          // A careless binding: B's reader may get A's Secret. The name guard still stops B's
          // Connectors from naming it (their Secret is always read in their own namespace).
          ...readerGrant(KA, ["hook"], KB, "careless-cross-tenant"),
          {
            apiVersion: "cynodeai.io/v1alpha1",
            kind: "SecretProvider",
            metadata: { name: "rel-k8s" },
            spec: {
              kubernetes: { serviceAccountName: "connector-reader" },
              allowedNamespaces: [KA, KB, KNOROLE],
            },
          },
        ]);
        const ctl = testWorld.spawnController({ name: "ks-ctl", namespaces: [KA, KB, KNOROLE] });
        procs.push(ctl);
        await ctl.started();

        const stalled = (reason: string) => ({ want: "stalled" as const, reason });
        const ready = { want: "ready" as const, enabled: true };
        const tricks = [
          `${KA}/hook`,
          `../${KA}/hook`,
          `/${KA}/hook`,
          `..%2f${KA}%2fhook`,
          `%2e%2e/${KA}/hook`,
          `${KA}\uFF0Fhook`,
          `..\u2215${KA}\u2215hook`,
          `namespaces/${KA}/secrets/hook`,
          `api/v1/namespaces/${KA}/secrets/hook`,
          "hook/../../t-ks-a/hook",
          "..",
          "./hook",
          "Hook",
        ];
        let i = 0;
        await create([
          ...tricks.map((t) => ({
            c: kubeSecretConnector(KB, `k${i++}`, t),
            e: stalled("InvalidSecretRef"),
          })),
          // Allowed by the provider, but the namespace's reader has no Role: the API server refuses it.
          {
            c: kubeSecretConnector(KNOROLE, "denied", "hook"),
            e: { ...stalled("PermissionDenied"), appliedGeneration: 1 },
          },
          // And the honest ones work, each with its own tenant's token.
          { c: kubeSecretConnector(KA, "hook", "hook"), e: ready },
          { c: kubeSecretConnector(KB, "hook", "hook"), e: ready },
        ]);
        r.badInputs += tricks.length + 1;
        const report = await checkInvariants({ kube, sql, world, logs }, { timeoutMs: 90_000 });
        r.violations += report.violations.length + authTarget.crossTenant.length;
        r.secretBytes += report.secretBytes;
        expect(authTarget.crossTenant, "a tenant's token presented for another tenant").toEqual([]);
        expect(report.violations.length + report.secretBytes, describeReport(report)).toBe(0);
        // The security property itself: B never presented A's token, and the namespace without a
        // Role never got the value its Secret holds.
        expect(authTarget.requests.filter((q) => q.ns === KB && q.owner === KA)).toEqual([]);
        expect(authTarget.requests.filter((q) => q.ns === KNOROLE)).toEqual([]);
        for (const c of await kube.listConnectors()) {
          if (c.metadata.namespace !== KB || c.metadata.name === "hook") continue;
          const s = c.status?.conditions?.find((x) => x.type === "Stalled");
          expect(s?.message, `${c.metadata.name}: a refusal names the field`).toMatch(
            /spec\.credentials\.secretRef\.name/,
          );
        }
        const denied = await kube.get(KNOROLE, "denied");
        expect(denied?.status?.conditions?.find((x) => x.type === "Stalled")?.message).toContain(
          `system:serviceaccount:${KNOROLE}:connector-reader may not get it`,
        );
        r.note = `${tricks.length} name tricks refused, RBAC refused a reader without a Role`;
      });
    },
    SCENARIO_TIMEOUT,
  );
});

describe("the invariants themselves", () => {
  it(
    "catch a ghost row, a secret in an Event, and a Connector in the wrong state",
    async () => {
      await tally.scenario("invariants", "self-check (planted faults must be caught)", async (r) => {
        const ns = "t-selfcheck";
        await kube.ensureNamespace(ns);
        const own = new World();
        own.namespaces.add(ns);
        // No controller watches this namespace: the Connector never gets a status.
        const [c] = await createAll(kube, [httpConnector(ns, "planted", target.url)]);
        own.expect({ ns, name: "planted", uid: c!.metadata.uid!, want: "ready", enabled: true });
        const ghost = await sql.query<{ id: string }>(
          `insert into connector_instances (namespace, name, uid, owner, type, type_version, config, config_schema_version, policy, enabled, state, applied_generation, spec_hash)
         values ($1, 'ghost', 'no-such-uid', '{}', 'http', 2, '{}', '2.0.0', '{}', true, 'active', 1, 'x') returning id`,
          [ns],
        );
        await kube.core.createNamespacedEvent({
          namespace: ns,
          body: {
            metadata: { name: "planted-leak" },
            involvedObject: { kind: "Connector", namespace: ns, name: "planted" },
            reason: "Planted",
            message: `token=${BEARER_SECRET}`,
            type: "Warning",
          },
        });
        const report = await checkInvariants({ kube, sql, world: own, logs: () => [] }, { timeoutMs: 1000 });
        r.note = `${report.violations.length} planted violations and ${report.secretBytes} planted secret bytes caught`;
        expect(report.violations.join("\n")).toMatch(/planted \(ready\): observedGeneration undefined/);
        expect(report.violations.join("\n")).toMatch(
          /live row .* whose Connector \(uid no-such-uid\) is gone/,
        );
        expect(report.secretBytes).toBe(BEARER_SECRET.length);
        expect(report.secretHits.map((h) => h.where)).toEqual(["Events"]);
        // Clean up, so that nothing planted is counted anywhere else.
        await sql.query("delete from connector_instances where id = $1", [ghost.rows[0]!.id]);
        await kube.core.deleteNamespacedEvent({ namespace: ns, name: "planted-leak" });
        await kube.delete(ns, "planted");
        await eventually(
          async () => (await kube.get(ns, "planted")) === undefined,
          "the planted Connector to go",
          60_000,
        );
      });
    },
    SCENARIO_TIMEOUT,
  );
});
