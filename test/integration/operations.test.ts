// Operating the controller: metrics and probes over HTTP, leader election between real
// processes, and sharding by namespace — against the real API server and PostgreSQL.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Connector } from "../../controller/src/api/types.ts";
import { apply, ensureNamespace, kubectlOk } from "../support/cluster.ts";
import { httpConnector, waitReady } from "../support/connectors.ts";
import type { ControlPlane } from "../support/controlPlane.ts";
import type { TestController } from "../support/controller.ts";
import type { ControllerProcess } from "../support/controllerProcess.ts";
import { eventually } from "../support/wait.ts";
import { startWorld, type World } from "../support/world.ts";

let world: World;
let cp: ControlPlane;

function connector(ns: string, name: string): Connector {
  return httpConnector(ns, name, world.target.url);
}

const ready = (ns: string, name: string) => waitReady(cp, ns, name, 45_000);

/** A replica in its own process, electing a leader with the others. */
function replica(name: string): ControllerProcess {
  return world.spawnController({
    name,
    namespaces: ["team-ha"],
    args: ["--leader-elect", "--leader-election-namespace", "default", "--leader-election-id", "ops-test"],
  });
}

async function lease(): Promise<{ holderIdentity?: string; leaseTransitions?: number }> {
  const out = await kubectlOk(cp, ["get", "lease", "ops-test", "-n", "default", "-o", "json"]);
  return JSON.parse(out).spec;
}

beforeAll(async () => {
  world = await startWorld({ target: true });
  cp = world.cp;
}, 600_000);

afterAll(async () => {
  await world?.stop();
});

describe("metrics and probes", () => {
  it("serves every metric with sensible values, /healthz and /readyz", async () => {
    const c = await world.startController([
      "--watch-namespaces",
      "team-metrics",
      "--leader-election-id",
      "metrics",
    ]);
    await ensureNamespace(cp, "team-metrics");
    await apply(cp, connector("team-metrics", "m1"));
    await apply(cp, {
      ...connector("team-metrics", "m2"),
      spec: { ...connector("team-metrics", "m2").spec, enabled: false },
    });
    await ready("team-metrics", "m1");
    await ready("team-metrics", "m2");

    const text = await (await fetch(`http://${c.addresses.metrics}/metrics`)).text();
    const value = (series: string) => {
      const line = text
        .split("\n")
        .find(
          (l) => l.startsWith(series + " ") || (l.startsWith(series + "{") && l.split(" ")[0] === series),
        );
      return line === undefined ? undefined : Number(line.split(" ").at(-1));
    };
    const has = (name: string) => text.includes(`# TYPE ${name} `);
    expect(
      value('controller_runtime_reconcile_total{controller="connector",result="requeue_after"}'),
    ).toBeGreaterThan(0);
    expect(value('controller_runtime_max_concurrent_reconciles{controller="connector"}')).toBe(4);
    expect(value('controller_runtime_active_workers{controller="connector"}')).toBeGreaterThanOrEqual(0);
    expect(value('controller_runtime_reconcile_time_seconds_count{controller="connector"}')).toBeGreaterThan(
      0,
    );
    expect(has("controller_runtime_reconcile_errors_total")).toBe(true);
    expect(value('workqueue_adds_total{name="connector"}')).toBeGreaterThanOrEqual(2);
    expect(value('workqueue_depth{name="connector"}')).toBeGreaterThanOrEqual(0);
    expect(value('workqueue_queue_duration_seconds_count{name="connector"}')).toBeGreaterThan(0);
    expect(value('workqueue_work_duration_seconds_count{name="connector"}')).toBeGreaterThan(0);
    expect(has("workqueue_retries_total")).toBe(true);
    expect(value('workqueue_unfinished_work_seconds{name="connector"}')).toBeGreaterThanOrEqual(0);
    expect(value('workqueue_longest_running_processor_seconds{name="connector"}')).toBeGreaterThanOrEqual(0);
    expect(value('connector_instances{state="active",type="http"}')).toBe(1);
    expect(value('connector_instances{state="disabled",type="http"}')).toBe(1);
    expect(value("connector_health")).toBe(1);
    // Per Connector, so an alert can name the one that is down.
    expect(
      value('connector_status_condition{namespace="team-metrics",name="m1",type="Ready",status="True"}'),
    ).toBe(1);
    expect(
      value('connector_status_condition{namespace="team-metrics",name="m1",type="Ready",status="False"}'),
    ).toBe(0);
    expect(
      value('connector_controller_relists_total{informer="connectors/team-metrics"}'),
    ).toBeGreaterThanOrEqual(1);
    for (const name of [
      "connector_probe_total",
      "connector_probe_duration_seconds",
      "connector_drift_corrections_total",
      "connector_circuit_breaker_trips_total",
      "connector_controller_watch_restarts_total",
      "connector_secret_resolutions_total",
    ])
      expect(text, name).toContain(`# TYPE ${name}`);
    expect(value("nodejs_heap_size_used_bytes")).toBeGreaterThan(0);
    expect(value("process_cpu_seconds_total")).toBeGreaterThan(0);

    const healthz = await fetch(`http://${c.addresses.health}/healthz`);
    expect(healthz.status).toBe(200);
    const readyz = await fetch(`http://${c.addresses.health}/readyz`);
    expect(readyz.status).toBe(200);
    expect(await readyz.text()).toBe("[+]informers ok\n[+]database ok\n");
  });
});

describe("leader election between two processes", () => {
  it("lets exactly one reconcile, hands over after the leader is killed, and releases the lease on SIGTERM", async () => {
    await ensureNamespace(cp, "team-ha");
    const a = replica("replica-a");
    await eventually(async () => a.said("controller started"), "replica A to lead", 60_000);
    const b = replica("replica-b");
    await eventually(
      async () => b.said("caches synced") && b.said("waiting to lead"),
      "replica B to stand by",
      60_000,
    );

    await apply(cp, connector("team-ha", "ha1"));
    await ready("team-ha", "ha1");
    const reconciledBy = (r: ControllerProcess) => r.lines.filter((l) => l.key === "team-ha/ha1").length;
    expect(reconciledBy(a)).toBeGreaterThan(0);
    expect(reconciledBy(b)).toBe(0);
    expect(b.said("became leader")).toBe(false);
    expect((await lease()).holderIdentity).toMatch(/^replica-a_/);

    const killedAt = Date.now();
    a.child.kill("SIGKILL");
    await a.exited;
    await eventually(async () => b.said("became leader"), "replica B to take over", 40_000);
    console.log(
      `leader killed -> standby holds the lease in ${Date.now() - killedAt} ms (lease 15 s, retry 2 s)`,
    );
    await eventually(async () => b.said("controller started"), "replica B's workers", 20_000);
    expect((await lease()).holderIdentity).toMatch(/^replica-b_/);
    await apply(cp, connector("team-ha", "ha2"));
    await ready("team-ha", "ha2");
    expect(b.lines.filter((l) => l.key === "team-ha/ha2").length).toBeGreaterThan(0);

    const c = replica("replica-c");
    await eventually(async () => c.said("waiting to lead"), "replica C to stand by", 60_000);
    const termAt = Date.now();
    b.child.kill("SIGTERM");
    await b.exited;
    expect(b.child.exitCode).toBe(0);
    expect(b.said("released the lease")).toBe(true);
    const released = await lease();
    expect(released.holderIdentity ?? "").not.toMatch(/^replica-b_/); // empty, or already C's
    await eventually(async () => c.said("became leader"), "replica C to take over", 40_000);
    console.log(
      `leader SIGTERM -> standby holds the lease in ${Date.now() - termAt} ms (released, no expiry wait)`,
    );
    c.child.kill("SIGTERM");
    await c.exited;
    // Three controller processes start one after another: on a busy machine that takes minutes.
  }, 300_000);
});

describe("sharding", () => {
  it("lets two controllers split the Connectors by namespace", async () => {
    await ensureNamespace(cp, "shard-a");
    await ensureNamespace(cp, "shard-b");
    const sa = await world.startController(["--watch-namespaces", "shard-a"]);
    const sb = await world.startController(["--watch-namespaces", "shard-b"]);
    await apply(cp, [connector("shard-a", "x"), connector("shard-b", "y")]);
    await ready("shard-a", "x");
    await ready("shard-b", "y");
    expect(sa.caches.allConnectors().map((c) => c.metadata.namespace)).toEqual(["shard-a"]);
    expect(sb.caches.allConnectors().map((c) => c.metadata.namespace)).toEqual(["shard-b"]);
    const keys = (c: TestController) => new Set(c.logLines.map((l) => JSON.parse(l).key).filter(Boolean));
    expect([...keys(sa)]).toEqual(["shard-a/x"]);
    expect([...keys(sb)]).toEqual(["shard-b/y"]);
  });
});
