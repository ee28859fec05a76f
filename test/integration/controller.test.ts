// The controller against a real kube-apiserver + etcd and a real PostgreSQL: the behaviour
// a platform team sees through kubectl.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as yaml from "js-yaml";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../controller/src/api/paths.ts";
import type { Connector } from "../../controller/src/api/types.ts";
import { apply, ensureNamespace, kubectlOk } from "../support/cluster.ts";
import {
  condition,
  exampleYaml,
  getConnector,
  httpConnector,
  waitConnector,
  waitReady,
} from "../support/connectors.ts";
import type { ControlPlane } from "../support/controlPlane.ts";
import { eventually } from "../support/wait.ts";
import { startWorld, type World } from "../support/world.ts";

const CONTROLLER_ARGS = ["--concurrency", "4"];
let world: World;
let cp: ControlPlane;
let sql: pg.Pool;

function connector(ns: string, name: string, patch: (c: Connector) => void = () => {}): Connector {
  const c = httpConnector(ns, name, world.target.url);
  patch(c);
  return c;
}

const readyConnector = (ns: string, name: string) => waitReady(cp, ns, name);

const stalledConnector = (ns: string, name: string, what: string) =>
  waitConnector(cp, ns, name, (c) => condition(c, "Stalled")?.status === "True", what, 30_000);

async function rowsFor(ns: string, name: string) {
  const r = await sql.query(
    "select * from connector_instances where namespace = $1 and name = $2 order by created_at",
    [ns, name],
  );
  return r.rows;
}

beforeAll(async () => {
  world = await startWorld({ target: true, controller: CONTROLLER_ARGS });
  ({ cp, sql } = world);
}, 600_000);

afterAll(async () => {
  await world?.stop();
});

describe("the controller against a real API server and PostgreSQL", () => {
  it("reconciles an applied Connector until kubectl wait --for=condition=Ready succeeds", async () => {
    // The standalone example as shipped, its receiver address (`make run`'s fixed demo port)
    // rewritten to the test's own target on a free port.
    await ensureNamespace(cp, "team-platform");
    await kubectlOk(
      cp,
      ["apply", "-f", "-"],
      exampleYaml("examples/connectors/status-webhook.yaml", world.target.url),
    );
    const r = await cp.kubectl([
      "wait",
      "--for=condition=Ready",
      "connector/status-webhook",
      "-n",
      "team-platform",
      "--timeout=60s",
    ]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("condition met");
    const rows = await rowsFor("team-platform", "status-webhook");
    expect(rows).toHaveLength(1);
    const c = await getConnector(cp, "team-platform", "status-webhook");
    expect(rows[0].uid).toBe(c!.metadata.uid);
    expect(c!.status?.instanceId).toBe(rows[0].id);
    expect(c!.metadata.finalizers).toContain("cynodeai.io/instance-cleanup");
  });

  it("shows the printer columns in kubectl get connectors", async () => {
    // Only Connector is in the `connectors` category, so the short form lists just them.
    const out = await kubectlOk(cp, ["get", "connectors", "-n", "team-platform"]);
    const [header, row] = out.trim().split("\n");
    expect(header!.split(/\s+/)).toEqual([
      "NAME",
      "TYPE",
      "ENABLED",
      "STATE",
      "READY",
      "HEALTHY",
      "DRIFT",
      "AGE",
    ]);
    expect(row!.split(/\s+/).slice(0, 7)).toEqual([
      "status-webhook",
      "http",
      "true",
      "active",
      "True",
      "True",
      "false",
    ]);
    const wide = await kubectlOk(cp, ["get", "conn", "-n", "team-platform", "-o", "wide"]);
    const rows = await rowsFor("team-platform", "status-webhook");
    expect(wide.split("\n")[0]).toMatch(/VERSION\s+INSTANCE\s+MESSAGE/);
    expect(wide).toContain(rows[0].id);
    expect(wide).toContain("connector is active");
  });

  it("refuses a spec that breaks a CEL rule at kubectl apply", async () => {
    const bad = connector(
      "team-platform",
      "both-policies",
      (c) => (c.spec.policyTemplate = "read-only-notifications"),
    );
    const r = await cp.kubectl(["apply", "-f", "-"], { input: yaml.dump(bad) });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("exactly one of spec.policy and spec.policyTemplate must be set");
    const rate = connector(
      "team-platform",
      "slow-burst",
      (c) => (c.spec.limits = { rateLimit: { rps: 5, burst: 2 } }),
    );
    const r2 = await cp.kubectl(["apply", "-f", "-"], { input: yaml.dump(rate) });
    expect(r2.stderr).toContain("limits.rateLimit.burst must be at least limits.rateLimit.rps");
    expect(await getConnector(cp, "team-platform", "slow-burst")).toBeUndefined();
  });

  it("stalls on a config that fails the type's schema, keeps the last valid config, and recovers when fixed", async () => {
    await ensureNamespace(cp, "team-stall");
    await apply(cp, connector("team-stall", "mail"));
    await readyConnector("team-stall", "mail");
    await kubectlOk(cp, [
      "patch",
      "connector",
      "mail",
      "-n",
      "team-stall",
      "--type=merge",
      "-p",
      '{"spec":{"config":{"timeoutMs":50}}}',
    ]);
    const stalled = await stalledConnector("team-stall", "mail", "Stalled=True");
    expect(condition(stalled, "Stalled")).toMatchObject({ reason: "InvalidConfig", observedGeneration: 2 });
    expect(condition(stalled, "Stalled")!.message).toContain("spec.config.timeoutMs: must be >= 100");
    expect(condition(stalled, "Ready")?.status).toBe("False");
    expect(stalled.status?.appliedGeneration).toBe(1);
    const rows = await rowsFor("team-stall", "mail");
    expect(rows[0].config.timeoutMs).toBe(5000);
    expect(Number(rows[0].applied_generation)).toBe(1);

    await kubectlOk(cp, [
      "patch",
      "connector",
      "mail",
      "-n",
      "team-stall",
      "--type=merge",
      "-p",
      '{"spec":{"config":{"timeoutMs":3000}}}',
    ]);
    const fixed = await readyConnector("team-stall", "mail");
    expect(condition(fixed, "Stalled")).toBeUndefined();
    expect(fixed.status?.appliedGeneration).toBe(3);
    expect((await rowsFor("team-stall", "mail"))[0].config.timeoutMs).toBe(3000);
  });

  it("gives policy-template, forbidden-operation, unknown-operation and over-cap cases each their clear status", async () => {
    await ensureNamespace(cp, "team-policy");
    const guarded = yaml.load(readFileSync(join(projectRoot, "examples/types/http.yaml"), "utf8")) as {
      metadata: { name: string };
      spec: { versions: { version: number; operations: object[] }[] };
    };
    guarded.metadata = { name: "http-guarded" };
    guarded.spec.versions
      .find((v) => v.version === 2)!
      .operations.push({
        name: "purgeQueue",
        mode: "sync",
        class: "forbidden",
        action: "connector.operation.invoke",
        maxTimeoutMs: 1000,
      });
    await apply(cp, guarded);
    await apply(cp, {
      apiVersion: "cynodeai.io/v1alpha1",
      kind: "ConnectorPolicyTemplate",
      metadata: { name: "deliver-only" },
      spec: { allowOperations: ["deliverEvent"], actionScope: ["connector.operation.invoke"] },
    });
    await apply(cp, [
      connector("team-policy", "templated", (c) => {
        delete c.spec.policy;
        c.spec.policyTemplate = "deliver-only";
      }),
      connector("team-policy", "forbidden", (c) => {
        c.spec.type = "http-guarded";
        c.spec.policy = { allowOperations: ["deliverEvent", "purgeQueue"] };
      }),
      connector(
        "team-policy",
        "unknown-op",
        (c) => (c.spec.policy = { allowOperations: ["launchMissiles"] }),
      ),
      connector("team-policy", "over-cap", (c) => (c.spec.limits = { maxParallelInvocations: 5000 })),
      connector("team-policy", "no-template", (c) => {
        delete c.spec.policy;
        c.spec.policyTemplate = "nonexistent";
      }),
    ]);
    const templated = await readyConnector("team-policy", "templated");
    const row = (await rowsFor("team-policy", "templated"))[0];
    expect(row.policy).toEqual({
      template: "deliver-only",
      actionScope: ["connector.operation.invoke"],
      operations: [{ name: "deliverEvent", class: "auto", action: "connector.operation.invoke" }],
    });
    expect(templated.status?.state).toBe("active");
    const stalled = async (name: string) =>
      condition(await stalledConnector("team-policy", name, "Stalled"), "Stalled")!;
    expect(await stalled("unknown-op")).toMatchObject({ reason: "PolicyDenied" });
    expect((await stalled("unknown-op")).message).toContain(
      'operation "launchMissiles" is not an operation of connector type "http"',
    );
    const f = await stalled("forbidden");
    expect(f.reason).toBe("PolicyDenied");
    expect(f.message).toContain(
      'spec.policy.allowOperations[1]: operation "purgeQueue" is forbidden (class C)',
    );
    const cap = await stalled("over-cap");
    expect(cap).toMatchObject({ reason: "LimitsExceeded" });
    expect(cap.message).toMatch(
      /spec\.limits\.maxParallelInvocations: 5000 is over the connector type's cap of \d+/,
    );
    expect(await stalled("no-template")).toMatchObject({ reason: "UnknownPolicyTemplate" });
    expect(await rowsFor("team-policy", "forbidden")).toEqual([]);
  });

  it("runs the finalizer on kubectl delete: row soft-deleted, object gone", async () => {
    await ensureNamespace(cp, "team-delete");
    await apply(cp, connector("team-delete", "mail"));
    await readyConnector("team-delete", "mail");
    await kubectlOk(cp, ["delete", "connector", "mail", "-n", "team-delete", "--timeout=60s"]);
    expect(await getConnector(cp, "team-delete", "mail")).toBeUndefined();
    const rows = await rowsFor("team-delete", "mail");
    expect(rows).toHaveLength(1);
    expect(rows[0].deleted_at).not.toBeNull();
    expect(rows[0].enabled).toBe(false);
  });

  it("stalls a type's Connectors when its version is retired, without editing them", async () => {
    await ensureNamespace(cp, "team-retire");
    const type = yaml.load(readFileSync(join(projectRoot, "examples/types/http.yaml"), "utf8")) as {
      metadata: { name: string };
      spec: { versions: { version: number; lifecycle: string }[] };
    };
    type.metadata.name = "retirable";
    await apply(cp, type);
    await apply(
      cp,
      connector("team-retire", "db", (c) => (c.spec.type = "retirable")),
    );
    await readyConnector("team-retire", "db");
    type.spec.versions.find((v) => v.version === 2)!.lifecycle = "retired";
    await apply(cp, type);
    const stalled = await stalledConnector("team-retire", "db", "Stalled after retirement");
    expect(condition(stalled, "Stalled")?.reason).toBe("RetiredTypeVersion");
    expect(stalled.metadata.generation).toBe(1);
  });

  it("restarts without duplicate rows or status writes for unchanged objects", async () => {
    const before = await sql.query("select count(*)::int as n from connector_instances");
    await world.stopController();
    const again = await world.startController(CONTROLLER_ARGS);
    await eventually(
      async () => again.controller.queue.length === 0 && again.controller.activeWorkers === 0,
      "the queue to drain",
    );
    await new Promise((r) => setTimeout(r, 1500));
    const after = await sql.query("select count(*)::int as n from connector_instances");
    expect(after.rows[0].n).toBe(before.rows[0].n);
    const dup = await sql.query(
      "select uid from connector_instances where deleted_at is null group by uid having count(*) > 1",
    );
    expect(dup.rows).toEqual([]);
    expect(again.writer.statusWrites).toBe(0);
  });

  it("recovers its watches after kube-apiserver is killed and restarted", async () => {
    await cp.restartApiServer();
    await ensureNamespace(cp, "team-restart");
    await apply(cp, connector("team-restart", "mail"));
    const c = await readyConnector("team-restart", "mail");
    expect(c.status?.state).toBe("active");
  });
});
