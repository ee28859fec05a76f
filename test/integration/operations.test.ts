// Operating the controller: metrics and probes over HTTP, leader election between real
// processes, and sharding by namespace — against the real API server and PostgreSQL.
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../controller/src/api/paths.ts";
import type { Connector } from "../../controller/src/api/types.ts";
import {
  apply,
  condition,
  ensureNamespace,
  eventually,
  getConnector,
  httpConnector,
  kubectlOk,
} from "../support/cluster.ts";
import { startTestController, type TestController } from "../support/controller.ts";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.ts";
import { startHttpTarget, type HttpTarget } from "../support/httpTarget.ts";
import { startTestPostgres, type TestPostgres } from "../support/postgres.ts";

let cp: ControlPlane;
let db: TestPostgres;
const inProcess: TestController[] = [];
const processes: ChildProcess[] = [];
let target: HttpTarget;

function connector(ns: string, name: string): Connector {
  return httpConnector(ns, name, target.url);
}

async function ready(ns: string, name: string): Promise<Connector> {
  return eventually(
    async () => {
      const c = await getConnector(cp, ns, name);
      return condition(c, "Ready")?.status === "True" &&
        c?.status?.observedGeneration === c?.metadata.generation
        ? c
        : undefined;
    },
    `${ns}/${name} Ready`,
    45_000,
  );
}

interface Replica {
  proc: ChildProcess;
  lines: { msg: string; key?: string; time?: string }[];
  exited: Promise<void>;
}

function replica(name: string): Replica {
  const proc = spawn(
    process.execPath,
    [
      join(projectRoot, "controller/src/main.ts"),
      "--kubeconfig",
      cp.kubeconfigPath,
      "--database-url",
      db.url,
      "--leader-elect",
      "--leader-election-namespace",
      "default",
      "--leader-election-id",
      "ops-test",
      "--metrics-bind-address",
      "127.0.0.1:0",
      "--health-probe-bind-address",
      "127.0.0.1:0",
      "--watch-namespaces",
      "team-ha",
      "--log-level",
      "debug",
    ],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, HOSTNAME: name } },
  );
  processes.push(proc);
  const r: Replica = { proc, lines: [], exited: new Promise((res) => proc.on("exit", () => res())) };
  let buf = "";
  proc.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        r.lines.push(JSON.parse(line));
      } catch {
        r.lines.push({ msg: line });
      }
    }
  });
  proc.stderr!.on("data", (d: Buffer) => r.lines.push({ msg: `stderr: ${d}` }));
  return r;
}

const said = (r: Replica, msg: string) => r.lines.some((l) => l.msg === msg);

async function lease(): Promise<{ holderIdentity?: string; leaseTransitions?: number }> {
  const out = await kubectlOk(cp, ["get", "lease", "ops-test", "-n", "default", "-o", "json"]);
  return JSON.parse(out).spec;
}

beforeAll(async () => {
  [cp, db, target] = await Promise.all([startControlPlane(), startTestPostgres(), startHttpTarget()]);
  await kubectlOk(cp, [
    "apply",
    "-f",
    join(projectRoot, "examples/types"),
    "-f",
    join(projectRoot, "examples/policy-templates"),
  ]);
}, 600_000);

afterAll(async () => {
  for (const p of processes) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  for (const c of inProcess) await c.stop();
  await db?.stop();
  await cp?.stop();
  await target?.stop();
});

describe("metrics and probes", () => {
  it("serves every metric with sensible values, /healthz and /readyz", async () => {
    const c = await startTestController(cp, db.url, [
      "--watch-namespaces",
      "team-metrics",
      "--leader-election-id",
      "metrics",
    ]);
    inProcess.push(c);
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
    await eventually(async () => said(a, "controller started"), "replica A to lead", 60_000);
    const b = replica("replica-b");
    await eventually(
      async () => said(b, "caches synced") && said(b, "waiting to lead"),
      "replica B to stand by",
      60_000,
    );

    await apply(cp, connector("team-ha", "ha1"));
    await ready("team-ha", "ha1");
    const reconciledBy = (r: Replica) => r.lines.filter((l) => l.key === "team-ha/ha1").length;
    expect(reconciledBy(a)).toBeGreaterThan(0);
    expect(reconciledBy(b)).toBe(0);
    expect(said(b, "became leader")).toBe(false);
    expect((await lease()).holderIdentity).toMatch(/^replica-a_/);

    const killedAt = Date.now();
    a.proc.kill("SIGKILL");
    await a.exited;
    await eventually(async () => said(b, "became leader"), "replica B to take over", 40_000);
    console.log(
      `leader killed -> standby holds the lease in ${Date.now() - killedAt} ms (lease 15 s, retry 2 s)`,
    );
    await eventually(async () => said(b, "controller started"), "replica B's workers", 20_000);
    expect((await lease()).holderIdentity).toMatch(/^replica-b_/);
    await apply(cp, connector("team-ha", "ha2"));
    await ready("team-ha", "ha2");
    expect(b.lines.filter((l) => l.key === "team-ha/ha2").length).toBeGreaterThan(0);

    const c = replica("replica-c");
    await eventually(async () => said(c, "waiting to lead"), "replica C to stand by", 60_000);
    const termAt = Date.now();
    b.proc.kill("SIGTERM");
    await b.exited;
    expect(b.proc.exitCode).toBe(0);
    expect(said(b, "released the lease")).toBe(true);
    const released = await lease();
    expect(released.holderIdentity ?? "").not.toMatch(/^replica-b_/); // empty, or already C's
    await eventually(async () => said(c, "became leader"), "replica C to take over", 40_000);
    console.log(
      `leader SIGTERM -> standby holds the lease in ${Date.now() - termAt} ms (released, no expiry wait)`,
    );
    c.proc.kill("SIGTERM");
    await c.exited;
  });
});

describe("sharding", () => {
  it("lets two controllers split the Connectors by namespace", async () => {
    await ensureNamespace(cp, "shard-a");
    await ensureNamespace(cp, "shard-b");
    const sa = await startTestController(cp, db.url, ["--watch-namespaces", "shard-a"]);
    const sb = await startTestController(cp, db.url, ["--watch-namespaces", "shard-b"]);
    inProcess.push(sa, sb);
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
